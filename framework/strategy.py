"""The base class of strategy plugins (how a cell's items are turned into requests) and what they work with."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, Field

from visionbench.preprocessing import Preprocessing
from visionbench.spec import StrictModel
from visionbench.types import Answer, BatchJob, BatchStatus, Capabilities, ImageItem, PreparedImage, Record, Task

T = TypeVar("T")

#: A strategy's ``max_concurrency``: a number of requests in flight, or ``"auto"`` (found by AIMD from the
#: service's 429s and overloads, shared by every cell on the same provider+model; see ``max_concurrency_ceiling``).
Concurrency = Annotated[int, Field(ge=1)] | Literal["auto"]
#: The most requests in flight ``auto`` goes to, unless a strategy's ``max_concurrency_ceiling`` says otherwise.
AUTO_CEILING = 64


def workers(max_concurrency: int | str, ceiling: int = AUTO_CEILING) -> int:
    """How many requests a strategy keeps going at once: the fixed figure, or the ceiling for ``auto``."""
    return ceiling if max_concurrency == "auto" else int(max_concurrency)


@dataclass(frozen=True)
class PlannedRequest:
    """A request a strategy expects to make, for cost planning before anything is spent."""

    item_ids: tuple[str, ...]
    max_side: int | None = None  # None: the cell's preprocessing
    provider: str | None = None  # None: the cell's
    model: str | None = None
    batch: bool = False


class Limit(Protocol):
    """A concurrency and rate limit, entered around each request (``ctx.limiter`` makes one)."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> object: ...


class StrategyContext(Protocol):
    """Everything a strategy may use: the cell it runs and the one way to a provider.

    ``ask`` and the batch calls do the preparing, calling (limits, timeout, retries, timing), parsing,
    pricing and recording; a strategy only decides which items go into which request, and when.
    """

    cell_id: str
    task: Task
    provider: str
    model: str
    preprocessing: Preprocessing
    model_params: dict[str, Any]

    def now(self) -> float:
        """Seconds since the run started."""
        ...

    def capabilities(self, provider: str | None = None, model: str | None = None) -> Capabilities:
        """What a provider can do for a model (default: the cell's)."""
        ...

    def limiter(
        self,
        max_concurrency: int | Literal["auto"] | None = None,
        requests_per_minute: float | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        ceiling: int = AUTO_CEILING,
    ) -> Limit:
        """A limit to pass to ``ask``: at most ``max_concurrency`` in flight, ``requests_per_minute`` started.

        ``"auto"``: the number in flight adapts to the service's pushback, up to ``ceiling``, shared with every
        cell calling ``provider``/``model`` (default: the cell's) in this run, and recorded in the cell's
        ``extra.concurrency``.
        """
        ...

    async def prepare(self, item: ImageItem, max_side: int | None = None) -> PreparedImage:
        """The item's image as it will be sent (cached), at ``max_side`` if given."""
        ...

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
        """Ask the task about ``items`` in one request, recorded; one answer per item."""
        ...

    async def submit_batches(self, items: Sequence[ImageItem]) -> list[BatchJob]:
        """One request per item as server-side batch jobs, as many as the service's limits on a job's requests and
        bytes require, each saved as soon as it is submitted; an interrupted run's saved jobs are picked up instead.

        Empty when there is nothing to wait for (every item failed; the failures are recorded).
        """
        ...

    async def poll_batch(
        self, job: BatchJob, *, initial_s: float, max_s: float, deadline_s: float
    ) -> BatchStatus | None:
        """Wait until the job is done; ``None`` when waiting failed (the failures are recorded, the job kept)."""
        ...

    async def collect_batch(self, job: BatchJob, status: BatchStatus) -> list[Answer]:
        """A finished job's results, recorded, one answer per item."""
        ...


async def for_each(items: Iterable[T], concurrency: int, fn: Callable[[T], Awaitable[object]]) -> None:
    """Run ``fn`` on every item with at most ``concurrency`` running, holding only that many coroutines."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await fn(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        # One failure (a budget stop, Ctrl-C) stops the siblings too, instead of leaving them running.
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


class Tally:
    """One cell run's records, taken one at a time as they are made (and a resumed run's earlier ones first).

    It keeps what its answers need, never the records: a big run's memory stays flat. By default the last
    answer added for an item counts (records come in the order they finish, a resumed run's earlier ones
    first: a retried item's new answer replaces its old error), and an item with an answer is finished.
    Subclasses override ``add`` and the readings to change those rules.
    """

    def __init__(self) -> None:
        self._final: dict[str, Answer] = {}

    def add(self, record: Record) -> None:
        """Take one record into account."""
        for answer in record.answers:
            self._final[answer.item_id] = answer

    def progress(self, record: Record) -> int:
        """How many items ``record`` brings to an answer, for the progress display (never kept).

        By default its answers when it is an item's first ask (``tier`` None or 1); a later tier asks again
        about items a first one already counted, so it counts none.
        """
        return len(record.answers) if record.tier is None or record.tier == 1 else 0

    def final_answers(self) -> dict[str, Answer]:
        """Which answer counts for each item."""
        return self._final

    def finished(self) -> set[str]:
        """Items whose work is done (answered, or failed for good), so a resumed run skips them.

        By default, those with a final answer. ``--retry-errors`` asks the failed ones of them again.
        """
        return set(self._final)

    def summarize(self, items: Sequence[ImageItem]) -> dict[str, Any]:
        """Strategy-specific figures for the cell summary (e.g. a filter's precision and recall)."""
        return {}


class NoParams(StrictModel):
    """Params of a strategy that takes none."""


#: The params model of a strategy: ``class MyStrategy(Strategy[MyParams])`` types ``self.params`` as ``MyParams``.
ParamsT = TypeVar("ParamsT", bound=BaseModel)


class Strategy(ABC, Generic[ParamsT]):
    """A strategy decides which images go into which request and in what order or concurrency.

    It never imports an SDK, sleeps, retries, times anything or builds a ``Record``: the context does.
    Subclasses set ``name`` and may set ``Params``, a pydantic model validated from the strategy's entry
    in the config matrix; ``class S(Strategy[SParams])`` with ``Params = SParams`` types ``self.params`` as
    ``SParams`` (``Strategy[NoParams]`` for none). One instance serves every repeat of its cell, so it keeps no
    state of a run.
    """

    name: ClassVar[str]
    #: The params model (a pydantic model); ``NoParams`` unless the subclass sets its own.
    Params: type[ParamsT] = cast("type[ParamsT]", NoParams)

    def __init__(self, params: ParamsT | None = None) -> None:
        self.params: ParamsT = params if params is not None else self.Params()

    def check(self, capabilities: Capabilities) -> str | None:
        """Say why this strategy cannot run on a provider with ``capabilities``, or ``None`` if it can."""
        return None

    def extra_providers(self) -> list[tuple[str | None, str | None]]:
        """(provider, model) pairs this strategy calls besides the cell's own (the adaptive tier 1, say)."""
        return []

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        """The requests this strategy expects to make; by default one per image."""
        return [PlannedRequest((item.id,)) for item in items]

    @abstractmethod
    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> dict[str, Any] | None:
        """Ask about every item through ``ctx``; return figures of this run for the cell summary, or None."""

    def tally(self) -> Tally:
        """A fresh accumulator for one cell run's records: which answer counts per item, which items are done,
        and the strategy's own figures. Override to change those rules (see :class:`Tally`)."""
        return Tally()
