"""Concurrent: one request per image, many in flight at once (bounded and rate-limited)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from visionbench import hookimpl
from visionbench.spec import StrictModel
from visionbench.strategy import AUTO_CEILING, Concurrency, Limit, Strategy, StrategyContext, for_each, workers
from visionbench.types import ImageItem


class ConcurrentParams(StrictModel):
    max_concurrency: Concurrency = Field(
        default=8, description="Requests in flight at once, or 'auto' (AIMD on the service's 429s and overloads)."
    )
    max_concurrency_ceiling: int = Field(default=AUTO_CEILING, ge=1, description="The most 'auto' goes to.")
    #: Requests started per minute, across retries too; None = no limit.
    requests_per_minute: float | None = Field(default=None, gt=0)


class Concurrent(Strategy[ConcurrentParams]):
    name = "concurrent"
    Params = ConcurrentParams

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        p = self.params
        rate = p.requests_per_minute
        limiter: Limit | None
        if p.max_concurrency == "auto":
            limiter = ctx.limiter("auto", rate, ceiling=p.max_concurrency_ceiling)
        else:
            # for_each already holds in-flight requests to max_concurrency; a limiter is only needed for the rate.
            limiter = ctx.limiter(requests_per_minute=rate) if rate else None
        n = workers(p.max_concurrency, p.max_concurrency_ceiling)
        await for_each(items, n, lambda item: ctx.ask([item], limiter=limiter))


@hookimpl
def register_strategies(register):
    register(Concurrent)
