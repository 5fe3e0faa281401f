"""What a strategy gets to work with: preparing images and asking a provider about them, recorded.

The cell's context only calls; its parts each have one job: ``ReadAhead`` (run/readahead.py) serves the
images, ``prompt_for`` (run/prompts.py) words the request, ``Recorder`` (run/recorder.py) makes the records
(parsing the reply with run/answers.py, pricing it), ``cell_job_key`` (run/jobs.py) names a batch job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import ItemError
from visionbench.provider import Provider
from visionbench.run.adaptive_limit import AdaptiveLimit
from visionbench.run.calling import Caller, Limiter
from visionbench.run.cellrun import CellRun
from visionbench.run.jobs import JobStore, cell_job_key
from visionbench.run.prompts import prompt_for, response_schema
from visionbench.run.readahead import ReadAhead
from visionbench.run.recorder import Recorder, Where
from visionbench.run.replay import Replay, request_key
from visionbench.services.limits import split_batch
from visionbench.strategy import AUTO_CEILING, Limit
from visionbench.types import (
    Answer,
    BatchJob,
    BatchStatus,
    Capabilities,
    ImageItem,
    PreparedImage,
    Request,
    task_placeholders,
    with_system_for,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunTools:
    """What every cell of a run shares: the providers, the one caller, the image cache, the saved batch jobs."""

    providers: Mapping[str, Provider]
    caller: Caller
    preprocessor: Preprocessor
    jobs: JobStore | None = None
    #: An earlier run whose answers stand in for requests that match them (``run --replay``), or None.
    replay: Replay | None = None


class CellContext:
    """One cell and repeat's view of the run: implements :class:`visionbench.strategy.StrategyContext`."""

    def __init__(self, run: CellRun, tools: RunTools, recorder: Recorder, expected: Sequence[ImageItem] = ()) -> None:
        self.run = run
        # What StrategyContext shows a strategy of its cell.
        self.cell_id = run.cell_id
        self.task = run.task
        #: Whether the prompts have ``{field}`` placeholders: then each request's are filled from its items.
        self._templated = bool(task_placeholders(run.task))
        self.preprocessing = run.preprocessing
        self.provider = run.provider
        self.model = run.model
        self.model_params = run.model_params
        self.providers = tools.providers
        self.caller = tools.caller
        self.jobs = tools.jobs
        self.replay = tools.replay
        self._recorder = recorder
        #: The items the cell is expected to ask about, in order (the runner's to-do list): read ahead.
        self._cache = ReadAhead(
            tools.preprocessor, (image for item in expected for image in item.images()), run.preprocessing
        )
        self._adaptive: list[AdaptiveLimit] = []
        #: Each batch item's request key (``run.replay``), for the record its result makes.
        self._batch_keys: dict[str, str] = {}
        self._counts_before: list[tuple[int, int]] = []  # each limit's pushbacks and decreases when first used
        self._started_s = tools.caller.now()

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
            self._counts_before.append(adaptive.counts())
        return Limiter(None, requests_per_minute, adaptive=adaptive)

    def close(self) -> None:
        """The cell is done: drop the images built ahead that it did not ask for."""
        self._cache.close()

    def concurrency_summary(self) -> dict[str, Any]:
        """``extra.concurrency`` of the cell: each adaptive limit it used, over the cell's time (none: empty)."""
        if not self._adaptive:
            return {}
        limits = [limit.summary(self._started_s, before) for limit, before in zip(self._adaptive, self._counts_before)]
        return {"concurrency": {"mode": "auto", "limits": limits}}

    async def prepare(self, item: ImageItem, max_side: int | None = None) -> PreparedImage:
        """The item's image preprocessed (cached), at ``max_side`` if given, else the experiment's setting; an item
        of several images: its first (each of ``item.images()`` can be prepared alike)."""
        settings = self.preprocessing if max_side is None else self.preprocessing.at(max_side)
        image = item.parts[0] if item.parts else item
        # A warm hit is served on the loop; only a miss (decode, resize, encode) goes to the worker threads.
        hit = self._cache.lookup(image, settings)
        return hit if hit is not None else await self._cache.build(image, settings)

    async def _prepare_all(
        self, items: Sequence[ImageItem], where: Where
    ) -> tuple[list[tuple[ImageItem, list[PreparedImage]]], list[Answer]]:
        """Each item with its images; an item any of whose images cannot be prepared gets an error answer,
        recorded."""
        prepared: list[tuple[ImageItem, list[PreparedImage]]] = []
        failed: list[Answer] = []
        for item in items:
            try:
                prepared.append((item, [await self.prepare(image, where.max_side) for image in item.images()]))
            except ItemError as exc:
                now = self.now()
                error = {"kind": "item", "message": f"image: {exc}"}
                unsent = replace(where, batch=False)  # an image that was never sent went through no batch
                failed.extend(self._recorder.record(unsent, [item.id], now, now, 0, error=error).answers)
        return prepared, failed

    def _request(
        self, where: Where, prepared: list[tuple[ImageItem, list[PreparedImage]]], params: dict[str, Any]
    ) -> Request:
        """The request asking the task about ``prepared``'s items (all their images), worded and shaped for them."""
        n = len(prepared)
        # A request's items share one prompt (the plan refuses several that differ): the first item's fields fill it.
        fields = prepared[0][0].fields if self._templated else None
        counts = tuple(len(images) for _, images in prepared)
        several = any(count > 1 for count in counts)
        schema = response_schema(self.task, n)
        structured = schema is not None and self.capabilities(where.provider, where.model).structured_output
        return Request(
            model=where.model,
            task=with_system_for(self.task, fields),
            prompt=prompt_for(self.task, n, fields, counts if several else None),
            images=tuple(image for _, images in prepared for image in images),
            params=params,
            response_schema=schema if structured else None,
            images_per_item=counts if several else None,
        )

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
        """Ask the task about ``items`` (all their images) in one request; record it and return one answer per
        item.

        Items whose images cannot be prepared get an error answer and are left out of the request.
        """
        own = provider is None and model is None
        where = Where(provider or self.provider, model or self.model, max_side, tier)
        prepared, failed = await self._prepare_all(items, where)
        if not prepared:
            return failed
        request = self._request(where, prepared, self.model_params if own else {})
        backend = self.providers[where.provider]
        key = self.request_key(where, request, [item for item, _ in prepared])
        earlier = self.replay.take(key) if self.replay is not None else None
        if earlier is not None:
            now = self.now()
            ids = [item.id for item, _ in prepared]
            return failed + self._recorder.replayed(where, ids, now, earlier, self.replay.run_id, key).answers  # type: ignore[union-attr]
        outcome = await self.caller.call(lambda: backend.generate(request), limiter)  # type: ignore[arg-type]
        record = self._recorder.record(
            where,
            [item.id for item, _ in prepared],
            outcome.start_s,
            outcome.end_s,
            outcome.attempts,
            result=outcome.error or outcome.value,
            queue_s=outcome.queue_s,
            backoff_s=outcome.backoff_s,
            request_key=key,
        )
        return failed + record.answers

    def request_key(self, where: Where, request: Request, items: Sequence[ImageItem]) -> str:
        """The request's content key: its endpoint's plugin (and server, unless emulated), and each image by its
        content and preprocessing, as the cache keys it."""
        backend = self.providers[where.provider]
        server = "emulator" if backend.endpoint is not None else (backend.base_url() or "the SDK's default")
        server += " batch" if where.batch else ""  # billed apart: a batch reply stands in for batch requests only
        settings = self.preprocessing if where.max_side is None else self.preprocessing.at(where.max_side)
        images = [f"{image.sha256}:{settings.key()}" for item in items for image in item.images()]
        return request_key(f"{type(backend).name}@{server}", request, images)

    async def submit_batches(self, items: Sequence[ImageItem]) -> list[BatchJob]:
        where = Where(self.provider, self.model, None, None, batch=True)
        prepared, _ = await self._prepare_all(items, where)
        if not prepared:
            return []
        backend = self.providers[self.provider]
        hashes = {item.id: item.sha256 for item in items}

        def key_of(item_ids: Iterable[str]) -> str:
            return cell_job_key(self.run, [f"{i}:{hashes[i]}" for i in item_ids])

        cell = key_of(())
        jobs, replaced = await self._saved_jobs(cell, [item.id for item, _ in prepared], key_of)
        taken = {item_id for job in jobs for item_id in job.item_ids.values()}
        # Custom ids are short and plain (services restrict them); each job remembers which item each stands for.
        todo = [(f"item-{n}", one) for n, one in enumerate(prepared) if one[0].id not in taken]
        requests = {custom_id: self._request(where, [one], dict(self.model_params)) for custom_id, one in todo}
        for custom_id, (item, _) in todo:
            self._batch_keys[item.id] = self.request_key(where, requests[custom_id], [item])
        for one in prepared:  # a resumed job's items: their keys, for the records their results make
            if one[0].id in taken:
                self._batch_keys[one[0].id] = self.request_key(
                    where, self._request(where, [one], dict(self.model_params)), [one[0]]
                )
        todo = [(custom_id, one) for custom_id, one in todo if not self._replayed(where, one[0])]
        sizes = [backend.batch_entry_bytes(self.model, custom_id, requests[custom_id]) for custom_id, _ in todo]
        for run in split_batch(sizes, *backend.batch_limits(self.model)):
            ids = {todo[i][0]: todo[i][1][0].id for i in run}
            chunk = {custom_id: requests[custom_id] for custom_id in ids}
            outcome = await self.caller.call(lambda chunk=chunk: backend.submit_batch(self.model, chunk))  # type: ignore[misc]
            if outcome.error is not None:
                self._recorder.record_each(
                    where, list(ids.values()), outcome.start_s, self.now(), outcome.attempts, outcome.error
                )
                continue
            key = key_of(ids.values())
            job = BatchJob(outcome.value, ids, outcome.start_s, key, replaced=replaced)  # type: ignore[arg-type]
            if self.jobs:
                entry = {"job_id": job.job_id, "provider": self.provider, "model": self.model, "ids": ids, "cell": cell}
                self.jobs.put(key, entry)
            jobs.append(job)
        return jobs

    def _replayed(self, where: Where, item: ImageItem) -> bool:
        """Whether ``run --replay`` answered the item's batch request from an earlier run (recorded), so it is not
        submitted."""
        key = self._batch_keys[item.id]
        earlier = self.replay.take(key) if self.replay is not None else None
        if earlier is None:
            return False
        self._recorder.replayed(where, [item.id], self.now(), earlier, self.replay.run_id, key)  # type: ignore[union-attr]
        return True

    async def _saved_jobs(
        self, cell: str, present: list[str], key_of: Callable[[Iterable[str]], str]
    ) -> tuple[list[BatchJob], str | None]:
        """The jobs an interrupted run of this cell submitted for these items and the service still knows; and
        which saved jobs the service denied (not found, expired, cancelled): their items are submitted afresh."""
        if not self.jobs:
            return [], None
        saved = self.jobs.of_cell(cell)
        whole = key_of(present)
        if whole not in saved and (old := self.jobs.get(whole)) is not None:
            saved[whole] = old  # saved by a version that made one job per cell
        backend = self.providers[self.provider]
        known = set(present)
        jobs: list[BatchJob] = []
        denied: list[str] = []
        for key, entry in saved.items():
            item_ids = list(entry.get("ids", {}).values())
            # A job for other images (changed since, or no longer asked about) is not this batch's.
            if not item_ids or not known.issuperset(item_ids) or key_of(item_ids) != key:
                continue
            job = BatchJob(entry["job_id"], entry["ids"], self.now(), key, resumed=True)
            check = await self.caller.call(lambda job=job: backend.poll_batch(job.job_id))  # type: ignore[misc]
            if check.error is None or check.error.retryable:
                jobs.append(job)
                known.difference_update(item_ids)
                continue
            denied.append(f"{job.job_id}: {check.error.kind}: {check.error}")
            log.warning("cell %s: saved batch job %s; submitting its items afresh", self.cell_id, denied[-1])
            self.jobs.forget(key)
        return jobs, "; ".join(denied) or None

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
            where = Where(self.provider, self.model, None, None, batch=True)
            ids = list(job.item_ids.values())
            self._recorder.record_each(where, ids, job.start_s, self.now(), outcome.attempts, outcome.error)
            return None
        return outcome.value  # type: ignore[return-value]

    async def collect_batch(self, job: BatchJob, status: BatchStatus) -> list[Answer]:
        backend = self.providers[self.provider]
        outcome = await self.caller.call(lambda: backend.collect_batch(job.job_id))
        where = Where(self.provider, self.model, None, None, batch=True)
        ids = list(job.item_ids.values())
        if outcome.error is not None:
            return self._recorder.record_each(where, ids, job.start_s, self.now(), outcome.attempts, outcome.error)
        results: dict = outcome.value  # type: ignore[assignment]
        answers: list[Answer] = []
        for custom_id, item_id in job.item_ids.items():
            result = results.get(custom_id)
            missing = {"kind": "missing", "message": f"no result in batch {job.job_id} ({status.state})"}
            record = self._recorder.record(
                where,
                [item_id],
                job.start_s,
                outcome.end_s,
                1,
                result=result,
                error=missing if result is None else None,
                request_id=job.job_id,
                request_key=self._batch_keys.get(item_id),
            )
            answers.extend(record.answers)
        if self.jobs:
            self.jobs.forget(job.key)
        return answers


__all__ = ["CellContext", "RunTools"]
