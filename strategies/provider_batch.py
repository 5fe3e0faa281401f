"""Provider batch: all images in server-side batch jobs, polled until done, at the batch price.

Each image is one request of a batch job (Gemini, Anthropic message batches, OpenAI). The images go in as many
jobs as the service's documented limits on a job's requests and bytes require (``limits.yaml``). Each job id is
saved in the results folder's job store as soon as it exists, so resuming an interrupted run picks those jobs up
instead of paying twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from visionbench import hookimpl
from visionbench.spec import StrictModel
from visionbench.strategy import PlannedRequest, Strategy, StrategyContext, Tally
from visionbench.types import BatchJob, Capabilities, ImageItem, Record


class ProviderBatchParams(StrictModel):
    poll_initial_s: float = Field(default=2.0, gt=0, description="First wait between polls; it doubles.")
    poll_max_s: float = Field(default=60.0, gt=0, description="Longest wait between polls.")
    max_wait_s: float = Field(
        default=24 * 3600.0, gt=0, description="Stop waiting after this long (the job is kept for a resume)."
    )


class ProviderBatch(Strategy[ProviderBatchParams]):
    name = "provider-batch"
    Params = ProviderBatchParams

    def check(self, capabilities: Capabilities) -> str | None:
        return None if capabilities.batch else "the provider has no batch API"

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        return [PlannedRequest((item.id,), batch=True) for item in items]

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> dict[str, Any]:
        jobs = await ctx.submit_batches(items)
        p = self.params

        async def finish(job: BatchJob) -> str | None:
            status = await ctx.poll_batch(job, initial_s=p.poll_initial_s, max_s=p.poll_max_s, deadline_s=p.max_wait_s)
            if status is not None:
                await ctx.collect_batch(job, status)
            return status.state if status is not None else None

        states = await asyncio.gather(*(finish(job) for job in jobs))
        distinct = list(dict.fromkeys(states))
        return {
            "batch": {
                "job_id": jobs[0].job_id if jobs else None,
                "job_ids": [job.job_id for job in jobs],
                "jobs": len(jobs),
                "requests_per_job": [len(job.item_ids) for job in jobs],
                "state": distinct[0] if len(distinct) == 1 else ", ".join(map(str, distinct)) if distinct else None,
                "resumed": any(job.resumed for job in jobs),
                "replaced": next((job.replaced for job in jobs if job.replaced), None),
            }
        }

    def tally(self) -> BatchTally:
        return BatchTally()


class BatchTally(Tally):
    """The default answers, and the batch's turnaround: its first record's start to its last one's end."""

    def __init__(self) -> None:
        super().__init__()
        self.started: float | None = None
        self.ended: float | None = None

    def add(self, record: Record) -> None:
        super().add(record)
        if record.batch and record.replayed is None:  # a replayed one was not waited for
            self.started = record.start_s if self.started is None else min(self.started, record.start_s)
            self.ended = record.end_s if self.ended is None else max(self.ended, record.end_s)

    def summarize(self, items: Sequence[ImageItem]) -> dict[str, Any]:
        turnaround = self.ended - self.started if self.ended is not None and self.started is not None else None
        return {"batch": {"turnaround_s": turnaround}}


@hookimpl
def register_strategies(register):
    register(ProviderBatch)
