"""Concurrent: one request per image, many in flight at once (bounded and rate-limited)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from visionbench import hookimpl
from visionbench.spec import StrictModel
from visionbench.strategy import Strategy, StrategyContext, for_each
from visionbench.types import ImageItem


class ConcurrentParams(StrictModel):
    max_concurrency: int = Field(default=8, ge=1)
    #: Requests started per minute, across retries too; None = no limit.
    requests_per_minute: float | None = Field(default=None, gt=0)


class Concurrent(Strategy):
    name = "concurrent"
    Params = ConcurrentParams

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        # for_each already holds in-flight requests to max_concurrency; a limiter is only needed for the rate.
        rate = self.params.requests_per_minute
        limiter = ctx.limiter(requests_per_minute=rate) if rate else None
        await for_each(items, self.params.max_concurrency, lambda item: ctx.ask([item], limiter=limiter))


@hookimpl
def register_strategies(register):
    register(Concurrent)
