"""Adaptive two-tier: a cheap low-resolution pass decides which images deserve an expensive high-resolution one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from visionbench import hookimpl
from visionbench.spec import StrictModel
from visionbench.strategy import (
    AUTO_CEILING,
    Concurrency,
    PlannedRequest,
    Strategy,
    StrategyContext,
    Tally,
    for_each,
    workers,
)
from visionbench.types import Capabilities, ImageItem, Record


class Tier1(StrictModel):
    #: Another provider and model for the cheap pass; default: the cell's own.
    provider: str | None = None
    model: str | None = None
    max_side: int = Field(default=384, gt=0)


class AdaptiveParams(StrictModel):
    tier1: Tier1 = Field(default_factory=Tier1)
    #: Tier-2 resolution; default: the cell's preprocessing.max_side.
    tier2_max_side: int | None = Field(default=None, gt=0)
    #: Escalate when the tier-1 answer is at least this (numbers) or true (yes/no tasks).
    #: A tier-1 failure always escalates.
    escalate_at: float = 1
    max_concurrency: Concurrency = Field(
        default=4,
        description="Images in flight at once, or 'auto': each tier's model then gets its own adaptive limit.",
    )
    max_concurrency_ceiling: int = Field(default=AUTO_CEILING, ge=1, description="The most 'auto' goes to.")


def needs_escalation(value: Any, threshold: float) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value >= threshold
    return True  # text answers cannot be thresholded: be safe, look closer


class Adaptive(Strategy[AdaptiveParams]):
    name = "adaptive"
    Params = AdaptiveParams

    def extra_providers(self) -> list[tuple[str | None, str | None]]:
        t1 = self.params.tier1
        return [(t1.provider, t1.model)] if t1.provider or t1.model else []

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        """Tier 1 for every image; tier 2 for those whose label says they need it (all, when unlabelled)."""
        t1 = self.params.tier1
        first = [PlannedRequest((i.id,), t1.max_side, t1.provider, t1.model) for i in items]
        escalated = [i for i in items if i.label is None or needs_escalation(i.label, self.params.escalate_at)]
        return first + [PlannedRequest((i.id,), self.params.tier2_max_side) for i in escalated]

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        t1, p = self.params.tier1, self.params
        if p.max_concurrency == "auto":
            # Each tier's model pushes back on its own: one adaptive limit each (the same one when they match).
            first_limit = ctx.limiter("auto", provider=t1.provider, model=t1.model, ceiling=p.max_concurrency_ceiling)
            second_limit = ctx.limiter("auto", ceiling=p.max_concurrency_ceiling)
        else:
            first_limit = second_limit = ctx.limiter(p.max_concurrency)

        async def one(item: ImageItem) -> None:
            [first] = await ctx.ask(
                [item], provider=t1.provider, model=t1.model, max_side=t1.max_side, tier=1, limiter=first_limit
            )
            if first.error is not None or needs_escalation(first.value, p.escalate_at):
                await ctx.ask([item], max_side=p.tier2_max_side, tier=2, limiter=second_limit)

        await for_each(items, workers(p.max_concurrency, p.max_concurrency_ceiling), one)

    def tally(self) -> AdaptiveTally:
        return AdaptiveTally(self.params.escalate_at)


class AdaptiveTally(Tally):
    """Tier 2's answer where it gave one, else tier 1's (a failed tier 2 does not erase a tier-1 answer).

    Done: tier 2 was asked, or tier 1 answered below the threshold (an image it sends on is not done).
    """

    def __init__(self, escalate_at: float) -> None:
        super().__init__()
        self.escalate_at = escalate_at
        self._key: dict[str, tuple[int, int]] = {}  # (tier, order added) of the answer held for each item
        self._added = 0
        self.escalated: set[str] = set()  # items tier 2 was asked about
        self._settled: set[str] = set()  # items tier 1 answered below the threshold

    def add(self, record: Record) -> None:
        self._added += 1
        key = (record.tier or 0, self._added)
        if record.tier == 2:
            self.escalated.update(record.item_ids)
        for answer in record.answers:
            if record.tier == 1 and answer.error is None and not needs_escalation(answer.value, self.escalate_at):
                self._settled.add(answer.item_id)
            held = self._final.get(answer.item_id)
            if held is None:
                take = True
            elif (answer.error is None) == (held.error is None):
                take = self._key[answer.item_id] < key  # the later in (tier, order added)
            else:
                take = answer.error is None  # an answer beats an error, whichever came first
            if take:
                self._final[answer.item_id] = answer
                self._key[answer.item_id] = key

    def finished(self) -> set[str]:
        return self.escalated | self._settled

    def summarize(self, items: Sequence[ImageItem]) -> dict[str, Any]:
        """How well tier 1 picked the items that needed tier 2, judged by the labels."""
        labelled = [item for item in items if item.label is not None]
        truth = {item.id for item in labelled if needs_escalation(item.label, self.escalate_at)}
        chosen = self.escalated & {item.id for item in labelled}
        hits = len(chosen & truth)
        return {
            "tier2_items": len(self.escalated),
            "tier1_filter": {
                "escalate_at": self.escalate_at,
                "precision": hits / len(chosen) if chosen else None,
                "recall": hits / len(truth) if truth else None,
                "true_positives": hits,
                "false_positives": len(chosen - truth),
                "false_negatives": len(truth - chosen),
            },
        }


@hookimpl
def register_strategies(register):
    register(Adaptive)
