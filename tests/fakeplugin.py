"""A provider plugin in its own module, loaded through the same hook as the built-ins.

It answers from a table in its options and can be told to fail, so the framework can be tested
without any SDK. (The SDK adapters are tested over HTTP against the emulator, never with this.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from visionbench import hookimpl
from visionbench.errors import BadRequest, Fatal, RateLimited, Transient
from visionbench.provider import Provider
from visionbench.spec import StrictModel
from visionbench.types import BatchStatus, Capabilities, Request, Response, Usage


class ScriptedOptions(StrictModel):
    answers: dict[str, Any] = {}  # int counts; strings and objects for other answer types
    delay_s: float = 0.0
    #: item id -> list of error kinds to raise on successive attempts ("rate_limited", "transient", "bad_request")
    failures: dict[str, list[str]] = {}
    retry_after_s: float | None = None
    max_images: int = 16
    reply_template: str | None = None
    batch_polls: int = 2
    #: Batch submissions from this one on (1 = the first) are refused for good.
    refuse_submits_from: int | None = None
    #: Requests one batch job may hold (the service's limit): a batch is split into jobs of at most this many.
    batch_max_requests: int | None = None


class Scripted(Provider):
    """Answers from a table; for framework tests."""

    name = "scripted"
    Options = ScriptedOptions
    simulated = True

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(max_images_per_request=self.options.max_images, structured_output=True, batch=True)

    def estimate_image_tokens(self, model, width, height):
        return 100  # what generate() reports per image

    # A batch "service" in memory: the job finishes after `batch_polls` polls.
    jobs: dict = {}
    submits = 0

    def batch_limits(self, model):
        return self.options.batch_max_requests, None

    async def submit_batch(self, model, requests):
        if self.options.batch_max_requests is not None:
            assert len(requests) <= self.options.batch_max_requests, "the framework sent more than the limit"
        Scripted.submits += 1
        if self.options.refuse_submits_from and Scripted.submits >= self.options.refuse_submits_from:
            raise BadRequest("batch quota exhausted", status=400)
        job_id = f"batch-{len(Scripted.jobs) + 1}"
        Scripted.jobs[job_id] = {"requests": requests, "polls": 0}
        return job_id

    async def poll_batch(self, job_id):
        if job_id not in Scripted.jobs:
            raise Fatal(f"Batch {job_id} not found", status=404)
        job = Scripted.jobs[job_id]
        job["polls"] += 1
        done = job["polls"] >= self.options.batch_polls
        return BatchStatus(job_id, "ended" if done else "in_progress", done, total=len(job["requests"]))

    async def collect_batch(self, job_id):
        out = {}
        for key, request in Scripted.jobs[job_id]["requests"].items():
            item_id = request.images[0].item_id
            if item_id in self.options.failures:
                out[key] = BadRequest("bad image in batch", status=400)
            elif item_id not in self.options.answers:
                continue  # the service lost it
            else:
                out[key] = Response(
                    text=str(self.options.answers[item_id]), usage=Usage(input_tokens=1000, output_tokens=10)
                )
        return out

    async def generate(self, request: Request) -> Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.options.delay_s:
                await asyncio.sleep(self.options.delay_s)
            for image in request.images:
                plan = self.options.failures.get(image.item_id)
                if plan:
                    kind = plan.pop(0)
                    if kind == "rate_limited":
                        raise RateLimited("slow down", retry_after=self.options.retry_after_s)
                    if kind == "transient":
                        raise Transient("503 unavailable", status=503, overload=True)
                    raise BadRequest("bad image", status=400)
            values = [self.options.answers.get(image.item_id, 0) for image in request.images]
            if self.options.reply_template:
                text = self.options.reply_template.format(*values)
            else:
                text = str(values[0]) if len(values) == 1 else json.dumps(values)
            usage = Usage(input_tokens=100 * len(values), output_tokens=5, thinking_tokens=None)
            return Response(
                text=text, usage=usage, model_version=request.model + "-001", request_id="req-1", cost_usd=0.001
            )
        finally:
            self.in_flight -= 1


@hookimpl
def register_providers(register):
    register(Scripted)
