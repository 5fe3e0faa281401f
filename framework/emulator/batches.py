"""Provider-side batch jobs shared by both protocols: submit, compute in the background, reveal after turnaround."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.emulator.engine import CountRequest, Engine, Outcome, Rejected

log = logging.getLogger(__name__)

#: Share of the turnaround a job stays pending before it runs.
PENDING_SHARE = 0.1


@dataclass
class ItemResult:
    """One request of a batch: an outcome or an error."""

    key: str
    outcome: Outcome | None = None
    error: Rejected | None = None


@dataclass
class BatchJob:
    """A batch job; its state follows from the clock, the computation and cancellation."""

    id: str
    protocol: str
    model: str
    display_name: str
    items: list[tuple[str, CountRequest | Rejected]]
    turnaround: float  # real seconds
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: Clock = REAL_CLOCK
    created_mono: float | None = None  # on ``clock``; None: when made
    results: list[ItemResult] | None = None
    cancelled: datetime | None = None
    ended: datetime | None = None
    task: asyncio.Task[None] | None = None
    #: Per-item metadata to echo back (Gemini ``metadata``), aligned with ``items``.
    item_meta: list[object] = field(default_factory=list)
    #: Bytes the job was submitted as: the request body, or the uploaded input file.
    submitted_bytes: int = 0

    def __post_init__(self) -> None:
        if self.created_mono is None:
            self.created_mono = self.clock.now()

    @property
    def elapsed(self) -> float:
        assert self.created_mono is not None
        return self.clock.now() - self.created_mono

    @property
    def phase(self) -> str:
        """pending, running, succeeded or cancelled."""
        if self.cancelled is not None:
            return "cancelled"
        if self.elapsed < self.turnaround * PENDING_SHARE:
            return "pending"
        if self.results is None or self.elapsed < self.turnaround:
            return "running"
        if self.ended is None:
            self.ended = datetime.now(UTC)
        return "succeeded"

    @property
    def expires(self) -> datetime:
        return self.created + timedelta(hours=24)

    def cancel(self) -> bool:
        """Cancel unless finished; True when this call cancelled it."""
        if self.phase in ("succeeded", "cancelled"):
            return False
        self.cancelled = self.ended = datetime.now(UTC)
        if self.task is not None:
            self.task.cancel()
        return True

    def counts(self) -> dict[str, int]:
        """succeeded / errored / processing / canceled tallies, as revealed now."""
        phase, n = self.phase, len(self.items)
        if phase == "succeeded" and self.results is not None:
            ok = sum(r.outcome is not None for r in self.results)
            return {"succeeded": ok, "errored": n - ok, "processing": 0, "canceled": 0}
        if phase == "cancelled":
            return {"succeeded": 0, "errored": 0, "processing": 0, "canceled": n}
        return {"succeeded": 0, "errored": 0, "processing": n, "canceled": 0}


class BatchStore:
    """Holds jobs and runs their computation on the engine (no capacity queue, no rate limit)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.jobs: dict[str, BatchJob] = {}

    def submit(
        self,
        protocol: str,
        model: str,
        items: list[tuple[str, CountRequest | Rejected]],
        display_name: str = "",
        prefix: str = "",
        item_meta: list[object] | None = None,
        submitted_bytes: int = 0,
    ) -> BatchJob:
        """Create a job for ``items`` ((key, request or a parse error) pairs) and start computing it."""
        st = self.engine.state(model, protocol)
        st.stats.batch_jobs += 1
        st.stats.batch_requests += len(items)
        job = BatchJob(
            id=prefix + secrets.token_hex(12),
            protocol=protocol,
            model=st.name,
            display_name=display_name,
            items=items,
            turnaround=st.profile.batch.turnaround_s * self.engine.time_scale,
            item_meta=list(item_meta or []),
            clock=self.engine.clock,
            submitted_bytes=submitted_bytes,
        )
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job), name=f"emulator-batch-{job.id}")
        return job

    async def _run(self, job: BatchJob) -> None:
        results: list[ItemResult] = []
        for key, item in job.items:
            if isinstance(item, Rejected):
                results.append(ItemResult(key, error=item))
                continue
            try:
                st = self.engine.state(item.model, item.protocol)
                fault, _ = st.draw_fault(item.digest)
                if fault is not None:
                    st.stats.faults[fault] += 1
                    raise Rejected("http_500", 500, "Internal error (emulated)")
                results.append(ItemResult(key, outcome=await self.engine.compute(item, st)))
            except Rejected as exc:
                results.append(ItemResult(key, error=exc))
            except Exception as exc:  # noqa: BLE001 - one bad item must not sink the job
                log.exception("emulator: batch item %s failed", key)
                results.append(ItemResult(key, error=Rejected("http_500", 500, f"internal error: {exc}")))
        job.results = results

    def get(self, job_id: str) -> BatchJob | None:
        return self.jobs.get(job_id)

    async def close(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def rfc3339(moment: datetime | None) -> str | None:
    """``2026-11-23T19:02:00.123456Z`` (None stays None)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
