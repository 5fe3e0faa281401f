"""Sequential: one request per image, one after another."""

from __future__ import annotations

from collections.abc import Sequence

from visionbench import hookimpl
from visionbench.strategy import NoParams, Strategy, StrategyContext
from visionbench.types import ImageItem


class Sequential(Strategy[NoParams]):
    name = "sequential"

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        for item in items:
            await ctx.ask([item])


@hookimpl
def register_strategies(register):
    register(Sequential)
