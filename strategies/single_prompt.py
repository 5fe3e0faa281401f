"""Single-prompt: many images in one request, answered by one structured reply."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from visionbench import hookimpl
from visionbench.spec import StrictModel
from visionbench.strategy import PlannedRequest, Strategy, StrategyContext, for_each
from visionbench.types import Capabilities, ImageItem


class SinglePromptParams(StrictModel):
    #: Images per request; None = all of them in one request.
    chunk_size: int | None = Field(default=None, ge=1)
    #: Chunks in flight at once.
    max_concurrency: int = Field(default=1, ge=1)


class SinglePrompt(Strategy):
    name = "single-prompt"
    Params = SinglePromptParams

    def check(self, capabilities: Capabilities) -> str | None:
        if capabilities.max_images_per_request < 2:
            return "the provider takes one image per request"
        if self.params.chunk_size and self.params.chunk_size > capabilities.max_images_per_request:
            limit = capabilities.max_images_per_request
            return f"chunk_size {self.params.chunk_size} exceeds the provider's {limit} images per request"
        return None

    def chunks(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[Sequence[ImageItem]]:
        size = self.params.chunk_size or min(len(items), capabilities.max_images_per_request)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        return [PlannedRequest(tuple(item.id for item in chunk)) for chunk in self.chunks(items, capabilities)]

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        await for_each(self.chunks(items, ctx.capabilities()), self.params.max_concurrency, ctx.ask)


@hookimpl
def register_strategies(register):
    register(SinglePrompt)
