"""The base class of strategy plugins: how a cell's items are turned into requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from visionbench.types import Capabilities, ImageItem, Record


@dataclass(frozen=True)
class PlannedRequest:
    """A request a strategy expects to make, for cost planning before anything is spent."""

    item_ids: tuple[str, ...]
    max_side: int | None = None  # None: the experiment's preprocessing
    provider: str | None = None  # None: the cell's
    model: str | None = None
    batch: bool = False


if TYPE_CHECKING:
    from visionbench.cell import CellContext


class NoParams(BaseModel):
    """Params of a strategy that takes none."""

    model_config = ConfigDict(extra="forbid")


class Strategy(ABC):
    """A strategy decides which images go into which request and in what order or concurrency.

    It never imports an SDK, retries or times anything itself: ``ctx.ask`` does the calling,
    with the shared retry, timeout and timing. Subclasses set ``name`` and may set ``Params``,
    a pydantic model validated from the strategy's entry in the config matrix.
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def check(self, capabilities: Capabilities) -> str | None:
        """Say why this strategy cannot run on a provider with ``capabilities``, or ``None`` if it can."""
        return None

    def extra_providers(self) -> list[tuple[str, str]]:
        """(provider, model) pairs this strategy calls besides the cell's own (the adaptive tier 1, say)."""
        return []

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        """The requests this strategy expects to make; by default one per image."""
        return [PlannedRequest((item.id,)) for item in items]

    @abstractmethod
    async def run(self, items: Sequence[ImageItem], ctx: CellContext) -> None:
        """Ask about every item through ``ctx.ask``; records are kept by the context as they happen."""

    def summarize(self, items: Sequence[ImageItem], records: Sequence[Record]) -> dict[str, Any]:
        """Strategy-specific figures for the cell summary (e.g. a filter's precision and recall)."""
        return {}

    def final_answers(self, records: Sequence[Record]) -> dict[str, Any]:
        """Which answer counts for each item: by default the last answer given for it."""
        final: dict[str, Any] = {}
        for record in sorted(records, key=lambda r: r.end_s):
            for answer in record.answers:
                final[answer.item_id] = answer
        return final
