"""What a strategy gets to work with: preparing images and asking a provider about them, recorded."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import ItemError, ProviderError
from visionbench.preprocessing import Preprocessing
from visionbench.provider import Provider
from visionbench.run.adaptive_limit import AdaptiveLimit
from visionbench.run.answers import ParseError, parse_many, parse_single
from visionbench.run.calling import Caller, Limiter
from visionbench.run.jobs import JobStore, job_key
from visionbench.run.prompts import answers_schema, prompt_for
from visionbench.services.pricing import PriceTable
from visionbench.strategy import AUTO_CEILING, Limit
from visionbench.types import (
    Answer,
    BatchJob,
    BatchStatus,
    Capabilities,
    ImageItem,
    PreparedImage,
    Record,
    Request,
    Response,
    Task,
)

log = logging.getLogger(__name__)


class ReadAhead:
    """Warm cache hits for the items a cell will ask about, looked up a window at a time, in order; and misses
    built ahead, on every core.

    A burst of lookups costs less than the same lookups spread between requests: the cache's SQLite and its
    data stay warm in the CPU's caches (benchmarks/overhead_bench.py shows the effect on requests/s). Holds
    at most a few windows of prepared images; items asked for out of order fall back to a plain lookup.
    When a miss is asked for, the next upcoming misses start building too, one per core (the preprocessor's
    threads), so a strategy that asks one image at a time still keeps every core busy; at most that many are
    held ahead.
    """

    def __init__(
        self, preprocessor: Preprocessor, items: Iterable[ImageItem], settings: Preprocessing, window: int = 32
    ) -> None:
        self.preprocessor, self.settings, self.window = preprocessor, settings, window
        self._upcoming: Iterator[ImageItem] = iter(items)
        self._ready: dict[str, PreparedImage | None] = {}
        self._misses: dict[str, ImageItem] = {}  # upcoming misses, in order
        self._building: dict[str, asyncio.Future[PreparedImage]] = {}

    def lookup(self, item: ImageItem, settings: Preprocessing) -> PreparedImage | None:
        """The cache hit for ``item`` (None: a miss, to be prepared)."""
        if settings is not self.settings and settings != self.settings:
            return self.preprocessor.lookup(item, settings)
        if item.id not in self._ready:
            if len(self._ready) > 4 * self.window:  # asked out of order: do not hoard
                self._ready.clear()
                self._misses.clear()
            for upcoming in itertools.islice(self._upcoming, self.window):
                hit = self._ready[upcoming.id] = self.preprocessor.lookup(upcoming, settings)
                if hit is None:
                    self._misses[upcoming.id] = upcoming
        if item.id in self._ready:
            return self._ready.pop(item.id)
        return self.preprocessor.lookup(item, settings)

    async def build(self, item: ImageItem, settings: Preprocessing) -> PreparedImage:
        """A miss, built on the preprocessor's threads (or already building); starts the next misses too."""
        future = self._building.pop(item.id, None) if settings == self.settings else None
        self._misses.pop(item.id, None)
        if future is None:
            future = self._start(item, settings)
        if settings == self.settings:
            while self._misses and len(self._building) < self.preprocessor.workers - 1:
                upcoming = next(iter(self._misses.values()))
                del self._misses[upcoming.id]
                self._building[upcoming.id] = self._start(upcoming, settings)
        return await future

    def _start(self, item: ImageItem, settings: Preprocessing) -> asyncio.Future[PreparedImage]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.preprocessor.pool, self.preprocessor.build, item, settings)
        # One built ahead and never asked for (the cell stopped) must not warn about an unread error.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future

    def close(self) -> None:
        """Forget what was built ahead and not asked for (it is in the cache anyway)."""
        for future in self._building.values():
            future.cancel()
        self._building.clear()


class CellContext:
    """One cell and repeat's view of the run: implements :class:`visionbench.strategy.StrategyContext`."""

    def __init__(
        self,
        *,
        cell_id: str,
        repeat: int = 0,
        task: Task,
        preprocessing: Preprocessing,
        providers: dict[str, Provider],
        provider: str,
        model: str,
        model_params: dict,
        caller: Caller,
        preprocessor: Preprocessor,
        on_record: Callable[[Record], None],
        prices: PriceTable | None = None,
        jobs: JobStore | None = None,
        expected: Sequence[ImageItem] = (),
    ) -> None:
        self.cell_id = cell_id
        self.repeat = repeat
        self.task = task
        self.preprocessing = preprocessing
        self.providers = providers
        self.provider = provider
        self.model = model
        self.model_params = model_params
        self.caller = caller
        self.preprocessor = preprocessor
        self._on_record = on_record
        self.prices = prices
        self.jobs = jobs
        #: The items the cell is expected to ask about, in order (the runner's to-do list): read ahead.
        self._cache = ReadAhead(preprocessor, expected, preprocessing)
        self._adaptive: list[AdaptiveLimit] = []
        self._started_s = caller.now()

    def now(self) -> float:
        return self.caller.now()

    def capabilities(self, provider: str | None = None, model: str | None = None) -> Capabilities:
        return self.providers[provider or self.provider].capabilities(model or self.model)

    def limiter(
        self,
        max_concurrency: int | str | None = None,
        requests_per_minute: float | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        ceiling: int = AUTO_CEILING,
    ) -> Limiter:
        if max_concurrency != "auto":
            return Limiter(max_concurrency, requests_per_minute)  # type: ignore[arg-type]
        adaptive = self.caller.adaptive.get(provider or self.provider, model or self.model, ceiling)
        if adaptive not in self._adaptive:
            self._adaptive.append(adaptive)
        return Limiter(None, requests_per_minute, adaptive=adaptive)

    def close(self) -> None:
        """The cell is done: drop the images built ahead that it did not ask for."""
        self._cache.close()

    def concurrency_summary(self) -> dict[str, Any]:
        """``extra.concurrency`` of the cell: each adaptive limit it used, over the cell's time (none: empty)."""
        if not self._adaptive:
            return {}
        limits = [limit.summary(self._started_s) for limit in self._adaptive]
        return {"concurrency": {"mode": "auto", "limits": limits}}

    async def prepare(self, item: ImageItem, max_side: int | None = None) -> PreparedImage:
        """The item's image preprocessed (cached), at ``max_side`` if given, else the experiment's setting."""
        settings = self.preprocessing if max_side is None else self.preprocessing.at(max_side)
        # A warm hit is served on the loop; only a miss (decode, resize, encode) goes to the worker threads.
        hit = self._cache.lookup(item, settings)
        return hit if hit is not None else await self._cache.build(item, settings)

    async def _prepare_all(self, items: Sequence[ImageItem], where: _Where) -> tuple[list[PreparedImage], list[Answer]]:
        """The items' images; an item whose image cannot be prepared gets an error answer, recorded."""
        prepared: list[PreparedImage] = []
        failed: list[Answer] = []
        for item in items:
            try:
                prepared.append(await self.prepare(item, where.max_side))
            except ItemError as exc:
                now = self.now()
                error = {"kind": "item", "message": f"image: {exc}"}
                unsent = replace(where, batch=False)  # an image that was never sent went through no batch
                failed.extend(self._record(unsent, [item.id], now, now, 0, error=error).answers)
        return prepared, failed

    async def ask(
        self,
        items: Sequence[ImageItem],
        *,
        provider: str | None = None,
        model: str | None = None,
        max_side: int | None = None,
        tier: int | None = None,
        limiter: Limit | None = None,
    ) -> list[Answer]:
        """Ask the task about ``items`` in one request; record it and return one answer per item.

        Items whose image cannot be prepared get an error answer and are left out of the request.
        """
        own = provider is None and model is None
        where = _Where(provider or self.provider, model or self.model, max_side, tier)
        prepared, failed = await self._prepare_all(items, where)
        if not prepared:
            return failed
        n = len(prepared)
        structured = n > 1 and self.capabilities(where.provider, where.model).structured_output
        request = Request(
            model=where.model,
            task=self.task,
            prompt=prompt_for(self.task, n),
            images=tuple(prepared),
            params=self.model_params if own else {},
            response_schema=answers_schema(self.task, n) if structured else None,
        )
        backend = self.providers[where.provider]
        outcome = await self.caller.call(lambda: backend.generate(request), limiter)  # type: ignore[arg-type]
        ids = [image.item_id for image in prepared]
        record = self._record(
            where,
            ids,
            outcome.start_s,
            outcome.end_s,
            outcome.attempts,
            result=outcome.error or outcome.value,
            queue_s=outcome.queue_s,
            backoff_s=outcome.backoff_s,
        )
        return failed + record.answers

    async def submit_batch(self, items: Sequence[ImageItem]) -> BatchJob | None:
        where = _Where(self.provider, self.model, None, None, batch=True)
        prepared, _ = await self._prepare_all(items, where)
        if not prepared:
            return None
        # Custom ids are short and plain (services restrict them); the job remembers which item each stands for.
        ids = {f"item-{n}": image.item_id for n, image in enumerate(prepared)}
        hashes = {item.id: item.sha256 for item in items}
        key = self._job_key([f"{i}:{hashes[i]}" for i in ids.values()])
        saved = self.jobs.get(key) if self.jobs else None
        backend = self.providers[self.provider]
        replaced = None
        if saved:
            job = BatchJob(saved["job_id"], saved["ids"], self.now(), key, resumed=True)
            check = await self.caller.call(lambda: backend.poll_batch(job.job_id))
            if check.error is None or check.error.retryable:
                return job
            # The service denies the saved job (not found, expired, cancelled): say so, and submit afresh, once.
            replaced = f"{job.job_id}: {check.error.kind}: {check.error}"
            log.warning("cell %s: saved batch job %s; submitting a new one", self.cell_id, replaced)
        requests = {
            custom_id: Request(self.model, self.task, prompt_for(self.task, 1), (image,), dict(self.model_params))
            for custom_id, image in zip(ids, prepared)
        }
        outcome = await self.caller.call(lambda: backend.submit_batch(self.model, requests))
        if outcome.error is not None:
            self._record_all(where, list(ids.values()), outcome.start_s, outcome.attempts, outcome.error)
            return None
        job = BatchJob(outcome.value, ids, outcome.start_s, key, replaced=replaced)  # type: ignore[arg-type]
        if self.jobs:
            entry = {"job_id": job.job_id, "provider": self.provider, "model": self.model, "ids": ids}
            self.jobs.put(key, entry)
        return job

    async def poll_batch(
        self, job: BatchJob, *, initial_s: float, max_s: float, deadline_s: float
    ) -> BatchStatus | None:
        backend = self.providers[self.provider]
        outcome = await self.caller.poll(
            lambda: backend.poll_batch(job.job_id),
            lambda status: status.done,
            initial_s=initial_s,
            max_s=max_s,
            deadline_s=deadline_s,
        )
        if outcome.error is not None:
            where = _Where(self.provider, self.model, None, None, batch=True)
            self._record_all(where, list(job.item_ids.values()), job.start_s, outcome.attempts, outcome.error)
            return None
        return outcome.value  # type: ignore[return-value]

    async def collect_batch(self, job: BatchJob, status: BatchStatus) -> list[Answer]:
        backend = self.providers[self.provider]
        outcome = await self.caller.call(lambda: backend.collect_batch(job.job_id))
        where = _Where(self.provider, self.model, None, None, batch=True)
        ids = list(job.item_ids.values())
        if outcome.error is not None:
            return self._record_all(where, ids, job.start_s, outcome.attempts, outcome.error)
        results: dict = outcome.value  # type: ignore[assignment]
        answers: list[Answer] = []
        for custom_id, item_id in job.item_ids.items():
            result = results.get(custom_id)
            missing = {"kind": "missing", "message": f"no result in batch {job.job_id} ({status.state})"}
            record = self._record(
                where,
                [item_id],
                job.start_s,
                outcome.end_s,
                1,
                result=result,
                error=missing if result is None else None,
                request_id=job.job_id,
            )
            answers.extend(record.answers)
        if self.jobs:
            self.jobs.forget(job.key)
        return answers

    def _job_key(self, item_hashes: list[str]) -> str:
        """'The same batch': this cell and repeat, its model and settings, and the images' content."""
        return job_key(
            self.cell_id,
            self.repeat,
            self.provider,
            self.model,
            self.task,
            self.preprocessing.key(),
            self.model_params,
            item_hashes=item_hashes,
        )

    def _record_all(
        self, where: _Where, ids: list[str], start_s: float, attempts: int, error: ProviderError
    ) -> list[Answer]:
        """One failed record per item (a batch fails item by item, so a retry can pick any of them)."""
        end = self.now()
        return [a for i in ids for a in self._record(where, [i], start_s, end, attempts, result=error).answers]

    def _record(
        self,
        where: _Where,
        ids: list[str],
        start_s: float,
        end_s: float,
        attempts: int,
        *,
        result: Response | ProviderError | None = None,
        error: dict[str, Any] | None = None,
        queue_s: float = 0.0,
        backoff_s: float = 0.0,
        request_id: str | None = None,
    ) -> Record:
        """The one place a call's result (a reply, or the error that ended it) becomes a kept ``Record``."""
        side = where.max_side if where.max_side is not None else self.preprocessing.max_side
        record = Record(
            self.cell_id,
            ids,
            where.provider,
            where.model,
            where.tier,
            start_s,
            end_s,
            attempts,
            side,
            batch=where.batch,
            queue_s=queue_s,
            backoff_s=backoff_s,
        )
        if isinstance(result, ProviderError):
            error = {"kind": result.kind, "message": str(result), "status": result.status}
        if error is not None:
            record.error = error
            message = error["message"] if error["kind"] == "item" else f"{error['kind']}: {error['message']}"
            record.answers = [Answer(i, error=message) for i in ids]
        elif isinstance(result, Response):
            record.raw_text = result.text
            record.usage = result.usage
            record.cost_usd = self.price(where.provider, where.model, result, batch=where.batch)
            record.request_id = result.request_id or request_id
            record.model_version = result.model_version
            record.simulated = result.simulated
            record.answers = parse_answers(result.text, ids, self.task)
            if result.ttft_s is not None:
                record.ttft_s = result.ttft_s
                out = result.usage.output_tokens if result.usage is not None else None
                if out is not None and result.generation_s:
                    record.output_tokens_per_s = out / result.generation_s
        # The record goes to the bundle and the cell's tallies there; none is kept here, so memory stays flat.
        self._on_record(record)
        return record

    def price(self, provider: str, model: str, response: Response, *, batch: bool = False) -> float | None:
        """The provider's own figure if it gave one (local models: 0), else the price table's."""
        if response.cost_usd is not None:
            return response.cost_usd
        if self.prices is None:
            return None
        return self.prices.cost(model, response.usage, batch=batch, provider=provider)


@dataclass(frozen=True)
class _Where:
    """Which provider, model, size and tier a request went to, and whether through the batch API."""

    provider: str
    model: str
    max_side: int | None
    tier: int | None
    batch: bool = False


def parse_answers(text: str, ids: list[str], task: Task) -> list[Answer]:
    """One answer per item id from a reply: a bare answer for one image, a JSON array for several."""
    if len(ids) == 1:
        try:
            return [Answer(ids[0], value=parse_single(text, task.answer_type))]
        except ParseError as exc:
            return [Answer(ids[0], error=f"unparseable reply: {exc}")]
    try:
        values = parse_many(text, len(ids), task.answer_type)
    except ParseError as exc:
        return [Answer(i, error=f"unparseable reply: {exc}") for i in ids]
    return [
        Answer(i, error=f"unparseable reply: {v}") if isinstance(v, ParseError) else Answer(i, value=v)
        for i, v in zip(ids, values)
    ]


__all__ = ["CellContext", "parse_answers"]
