"""What a strategy gets to work with: preparing images and asking a provider about them, recorded."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from visionbench.answers import ParseError, parse_many, parse_single
from visionbench.calling import Caller, Limiter
from visionbench.errors import ItemError
from visionbench.jobs import JobStore
from visionbench.preprocess import Preprocessing, Preprocessor
from visionbench.pricing import PriceTable
from visionbench.provider import Provider
from visionbench.types import Answer, ImageItem, PreparedImage, Record, Request, Response, Task

_JSON_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "text": "string"}


def multi_image_prompt(task: Task, n: int) -> str:
    """The single-prompt wording: images are labelled Image 1..N and one JSON array answers them in order."""
    return (
        f"You are given {n} images, labelled Image 1 to Image {n} in the order they appear.\n"
        f"For each image, answer this question: {task.prompt}\n"
        f"Reply with only a JSON array of {n} {_JSON_TYPES[task.answer_type]} values, "
        f"one per image in order (Image 1 first), and nothing else."
    )


def answers_schema(task: Task, n: int) -> dict:
    """JSON Schema for a reply of ``n`` answers, for providers with structured output."""
    return {"type": "array", "items": {"type": _JSON_TYPES[task.answer_type]}, "minItems": n, "maxItems": n}


class ReadAhead:
    """Warm cache hits for the items a cell will ask about, looked up a window at a time, in order.

    A burst of lookups costs less than the same lookups spread between requests: the cache's SQLite and its
    data stay warm in the CPU's caches (benchmarks/overhead_bench.py shows the effect on requests/s). Holds
    at most a few windows of prepared images; items asked for out of order fall back to a plain lookup.
    """

    def __init__(
        self, preprocessor: Preprocessor, items: Iterable[ImageItem], settings: Preprocessing, window: int = 32
    ) -> None:
        self.preprocessor, self.settings, self.window = preprocessor, settings, window
        self._upcoming: Iterator[ImageItem] = iter(items)
        self._ready: dict[str, PreparedImage | None] = {}

    def lookup(self, item: ImageItem, settings: Preprocessing) -> PreparedImage | None:
        """The cache hit for ``item`` (None: a miss, to be prepared)."""
        if settings != self.settings:
            return self.preprocessor.lookup(item, settings)
        if item.id not in self._ready:
            if len(self._ready) > 4 * self.window:  # asked out of order: do not hoard
                self._ready.clear()
            for upcoming in itertools.islice(self._upcoming, self.window):
                self._ready[upcoming.id] = self.preprocessor.lookup(upcoming, settings)
        if item.id in self._ready:
            return self._ready.pop(item.id)
        return self.preprocessor.lookup(item, settings)


class CellContext:
    """One cell's view of the run. ``ask`` is the only way a strategy reaches a provider."""

    def __init__(
        self,
        *,
        cell_id: str,
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
        self.records: list[Record] = []
        #: The items the cell is expected to ask about, in order (the runner's to-do list): read ahead.
        self._cache = ReadAhead(preprocessor, expected, preprocessing)

    def capabilities(self, provider: str | None = None, model: str | None = None):
        return self.providers[provider or self.provider].capabilities(model or self.model)

    async def prepare(self, item: ImageItem, max_side: int | None = None) -> PreparedImage:
        """The item's image preprocessed (cached), at ``max_side`` if given, else the experiment's setting."""
        settings = self.preprocessing if max_side is None else replace(self.preprocessing, max_side=max_side)
        # A warm hit is served on the loop; only a miss (decode, resize, encode) goes to a worker thread.
        hit = self._cache.lookup(item, settings)
        return hit if hit is not None else await asyncio.to_thread(self.preprocessor.build, item, settings)

    async def ask(
        self,
        items: Sequence[ImageItem],
        *,
        provider: str | None = None,
        model: str | None = None,
        max_side: int | None = None,
        tier: int | None = None,
        limiter: Limiter | None = None,
    ) -> list[Answer]:
        """Ask the task about ``items`` in one request; record it and return one answer per item.

        Items whose image cannot be prepared get an error answer and are left out of the request.
        """
        provider_name = provider or self.provider
        model_name = model or self.model
        params = self.model_params if provider is None and model is None else {}
        side = max_side if max_side is not None else self.preprocessing.max_side

        prepared: list[PreparedImage] = []
        failed: list[Answer] = []
        for item in items:
            try:
                prepared.append(await self.prepare(item, max_side))
            except ItemError as exc:
                failed.append(Answer(item.id, error=f"image: {exc}"))
        for answer in failed:
            self._keep(
                Record(
                    self.cell_id,
                    [answer.item_id],
                    provider_name,
                    model_name,
                    tier,
                    self.caller.now(),
                    self.caller.now(),
                    0,
                    side,
                    answers=[answer],
                    error={"kind": "item", "message": answer.error},
                )
            )
        if not prepared:
            return failed

        n = len(prepared)
        structured = n > 1 and self.capabilities(provider_name, model_name).structured_output
        request = Request(
            model=model_name,
            task=self.task,
            prompt=self.task.prompt if n == 1 else multi_image_prompt(self.task, n),
            images=tuple(prepared),
            params=params,
            response_schema=answers_schema(self.task, n) if structured else None,
        )
        backend = self.providers[provider_name]
        outcome = await self.caller.call(lambda: backend.generate(request), limiter)
        ids = [image.item_id for image in prepared]
        record = Record(
            self.cell_id,
            ids,
            provider_name,
            model_name,
            tier,
            outcome.start_s,
            outcome.end_s,
            outcome.attempts,
            side,
            queue_s=outcome.queue_s,
            backoff_s=outcome.backoff_s,
        )
        if outcome.error is not None:
            err = outcome.error
            record.error = {"kind": err.kind, "message": str(err), "status": err.status}
            record.answers = [Answer(i, error=f"{err.kind}: {err}") for i in ids]
        else:
            response = outcome.value
            record.raw_text = response.text
            record.usage = response.usage
            record.cost_usd = self.price(model_name, response, provider=provider_name)
            record.request_id = response.request_id
            record.model_version = response.model_version
            record.simulated = response.simulated
            record.answers = parse_answers(response.text, ids, self.task)
        self._keep(record)
        return failed + record.answers

    def price(
        self, model: str, response: Response, *, batch: bool = False, provider: str | None = None
    ) -> float | None:
        """The provider's own figure if it gave one (local models: 0), else the price table's."""
        if response.cost_usd is not None:
            return response.cost_usd
        if self.prices is None:
            return None
        return self.prices.cost(model, response.usage, batch=batch, provider=provider or self.provider)

    def keep(self, record: Record) -> None:
        """Record a request made outside ``ask`` (the provider-batch strategy's)."""
        self._keep(record)

    def _keep(self, record: Record) -> None:
        self._on_record(record)
        # In the bundle now. Summaries never read the per-request text, so a big run's memory stays flat.
        record.raw_text = record.request_id = record.model_version = None
        self.records.append(record)


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


__all__ = ["CellContext", "answers_schema", "multi_image_prompt", "parse_answers"]
