"""Provider batch: all images in one server-side batch job, polled until done, at the batch price.

Each image is one request of a Gemini batch job or an Anthropic message batch. The job id is saved
(results/batch_jobs.json) as soon as it exists, so re-running an interrupted run resumes that job
instead of paying twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from visionbench import hookimpl
from visionbench.cell import CellContext, parse_answers
from visionbench.errors import ItemError, ProviderError
from visionbench.jobs import job_key
from visionbench.strategy import PlannedRequest, Strategy
from visionbench.types import Answer, Capabilities, ImageItem, Record, Request


class ProviderBatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    poll_initial_s: float = Field(default=2.0, gt=0)
    poll_max_s: float = Field(default=60.0, gt=0)
    #: Give up waiting (the job is kept and resumed by the next run) after this long.
    max_wait_s: float = Field(default=24 * 3600.0, gt=0)


class ProviderBatch(Strategy):
    name = "provider-batch"
    Params = ProviderBatchParams

    def check(self, capabilities: Capabilities) -> str | None:
        return None if capabilities.batch else "the provider has no batch API"

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        return [PlannedRequest((item.id,), batch=True) for item in items]

    async def run(self, items: Sequence[ImageItem], ctx: CellContext) -> None:
        provider = ctx.providers[ctx.provider]
        requests: dict[str, Request] = {}
        ids: dict[str, str] = {}  # custom id -> item id (custom ids must be short and plain)
        for n, item in enumerate(items):
            try:
                image = await ctx.prepare(item)
            except ItemError as exc:
                answer = Answer(item.id, error=f"image: {exc}")
                now = ctx.caller.now()
                ctx.keep(
                    Record(
                        ctx.cell_id,
                        [item.id],
                        ctx.provider,
                        ctx.model,
                        None,
                        now,
                        now,
                        0,
                        ctx.preprocessing.max_side,
                        answers=[answer],
                        error={"kind": "item", "message": str(exc)},
                    )
                )
                continue
            custom_id = f"item-{n}"
            ids[custom_id] = item.id
            requests[custom_id] = Request(ctx.model, ctx.task, ctx.task.prompt, (image,), dict(ctx.model_params))
        if not requests:
            return

        key = job_key(
            ctx.provider,
            ctx.model,
            ctx.task,
            ctx.preprocessing,
            ctx.model_params,
            item_hashes=[f"{i.id}:{i.sha256}" for i in items if i.id in ids.values()],
        )
        saved = ctx.jobs.get(key) if ctx.jobs else None
        start = ctx.caller.now()
        self.resumed = saved is not None
        if saved:
            job_id, ids = saved["job_id"], saved["ids"]
        else:
            outcome = await ctx.caller.call(lambda: provider.submit_batch(ctx.model, requests))
            if outcome.error is not None:
                self._fail_all(ctx, ids, start, outcome.attempts, outcome.error)
                return
            job_id = outcome.value
            if ctx.jobs:
                ctx.jobs.put(key, {"job_id": job_id, "provider": ctx.provider, "model": ctx.model, "ids": ids})
        self.job_id = job_id

        delay = self.params.poll_initial_s
        while True:
            outcome = await ctx.caller.call(lambda: provider.poll_batch(job_id))
            if outcome.error is not None:
                self._fail_all(ctx, ids, start, outcome.attempts, outcome.error)
                return
            status = outcome.value
            self.state = status.state
            if status.done:
                break
            if ctx.caller.now() - start > self.params.max_wait_s:
                raise TimeoutError(f"batch {job_id} not done after {self.params.max_wait_s:g} s; re-run to resume it")
            await ctx.caller.sleep(delay)
            delay = min(self.params.poll_max_s, delay * 2)

        outcome = await ctx.caller.call(lambda: provider.collect_batch(job_id))
        end = ctx.caller.now()
        if outcome.error is not None:
            self._fail_all(ctx, ids, start, outcome.attempts, outcome.error)
            return
        results = outcome.value
        for custom_id, item_id in ids.items():
            record = Record(
                ctx.cell_id,
                [item_id],
                ctx.provider,
                ctx.model,
                None,
                start,
                end,
                1,
                ctx.preprocessing.max_side,
                batch=True,
                request_id=job_id,
            )
            result = results.get(custom_id)
            if result is None:
                record.error = {"kind": "missing", "message": f"batch {job_id} ({status.state}) has no result for it"}
                record.answers = [Answer(item_id, error=f"missing: no result in batch ({status.state})")]
            elif isinstance(result, ProviderError):
                record.error = {"kind": result.kind, "message": str(result), "status": result.status}
                record.answers = [Answer(item_id, error=f"{result.kind}: {result}")]
            else:
                record.raw_text, record.usage = result.text, result.usage
                record.model_version, record.simulated = result.model_version, result.simulated
                record.request_id = result.request_id or job_id
                record.cost_usd = ctx.price(ctx.model, result, batch=True)
                record.answers = parse_answers(result.text, [item_id], ctx.task)
            ctx.keep(record)
        if ctx.jobs:
            ctx.jobs.forget(key)

    def _fail_all(
        self, ctx: CellContext, ids: dict[str, str], start: float, attempts: int, error: ProviderError
    ) -> None:
        for item_id in ids.values():
            answer = Answer(item_id, error=f"{error.kind}: {error}")
            ctx.keep(
                Record(
                    ctx.cell_id,
                    [item_id],
                    ctx.provider,
                    ctx.model,
                    None,
                    start,
                    ctx.caller.now(),
                    attempts,
                    ctx.preprocessing.max_side,
                    answers=[answer],
                    batch=True,
                    error={"kind": error.kind, "message": str(error), "status": error.status},
                )
            )

    def summarize(self, items: Sequence[ImageItem], records: Sequence[Record]) -> dict[str, Any]:
        ended = [r.end_s for r in records if r.batch]
        started = [r.start_s for r in records if r.batch]
        return {
            "batch": {
                "job_id": getattr(self, "job_id", None),
                "state": getattr(self, "state", None),
                "resumed": getattr(self, "resumed", False),
                "turnaround_s": max(ended) - min(started) if ended else None,
            }
        }


@hookimpl
def register_strategies(register):
    register(ProviderBatch)
