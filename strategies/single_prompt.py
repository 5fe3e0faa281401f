"""Single-prompt: many items (all their images) in one request, answered by one structured reply.

Requests keep within the provider's documented limits (``Capabilities``): at most its images per request, each
image no larger than its side limit (the smaller one for requests of many images, e.g. Anthropic's 2000 px
above 20 images) and its bytes per image, and the request below its bytes per request; a chunk that would
break one is resized or split, never sent to fail.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from visionbench import hookimpl
from visionbench.errors import ItemError
from visionbench.spec import StrictModel
from visionbench.strategy import (
    AUTO_CEILING,
    Concurrency,
    PlannedRequest,
    Strategy,
    StrategyContext,
    for_each,
    workers,
)
from visionbench.types import Capabilities, ImageItem, PreparedImage

log = logging.getLogger(__name__)

#: Share of a request's byte limit left for images (the prompt, the JSON around the base64).
REQUEST_HEADROOM = 0.95


class SinglePromptParams(StrictModel):
    #: Items per request (an item of several images is sent whole); None = as many as the provider takes.
    chunk_size: int | None = Field(default=None, ge=1)
    max_concurrency: Concurrency = Field(
        default=1, description="Chunks in flight at once, or 'auto' (AIMD on the service's 429s and overloads)."
    )
    max_concurrency_ceiling: int = Field(default=AUTO_CEILING, ge=1, description="The most 'auto' goes to.")


@dataclass(frozen=True)
class Chunk:
    """The items of one request and the longest side their images are sent at (None: the experiment's)."""

    items: Sequence[ImageItem]
    max_side: int | None = None


def side_for(n: int, wanted: int | None, caps: Capabilities) -> int | None:
    """The max_side to send ``n`` images at: ``wanted`` (None: unresized) capped by the provider's side rule."""
    many = caps.many_images_threshold is not None and n > caps.many_images_threshold
    limit = caps.max_image_side_many if many and caps.max_image_side_many else caps.max_image_side
    if limit is None or (wanted is not None and wanted <= limit):
        return None
    return limit


def b64_len(n_bytes: int) -> int:
    return 4 * math.ceil(n_bytes / 3)


def _images(items: Sequence[ImageItem]) -> int:
    """How many images ``items`` have in all."""
    return sum(len(item.parts) or 1 for item in items)


class SinglePrompt(Strategy[SinglePromptParams]):
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
        """Items in requests of ``chunk_size`` items (all: as many as the provider takes), whole items only: an
        item of several images never straddles two requests, nor a request more images than the provider takes."""
        limit = capabilities.max_images_per_request
        size = self.params.chunk_size or min(len(items), limit)
        if not any(item.parts for item in items):  # an image per item: slices (views of a dataset's columns)
            return [items[i : i + size] for i in range(0, len(items), size)]
        out: list[Sequence[ImageItem]] = []
        current: list[ImageItem] = []
        images = 0
        for item in items:
            count = len(item.images())
            if current and (len(current) >= size or images + count > limit):
                out.append(current)
                current, images = [], 0
            current.append(item)
            images += count
        if current:
            out.append(current)
        return out

    def plan(self, items: Sequence[ImageItem], capabilities: Capabilities) -> list[PlannedRequest]:
        # The experiment's max_side is not known here: where a side limit applies, the plan assumes images at
        # the limit (at most what will be sent, so the estimate errs on the dear side).
        return [
            PlannedRequest(tuple(item.id for item in chunk), max_side=side_for(_images(chunk), None, capabilities))
            for chunk in self.chunks(items, capabilities)
        ]

    async def fit(self, chunk: Sequence[ImageItem], ctx: StrategyContext, caps: Capabilities) -> list[Chunk]:
        """``chunk`` resized within the side rule and the bytes per image, split within the bytes per request."""
        n_images = _images(chunk)
        side = side_for(n_images, ctx.preprocessing.max_side, caps)
        if side is not None:
            log.info("single-prompt: %d images sent at max_side %d (the provider's limit)", n_images, side)
        if caps.max_image_bytes is None and caps.max_request_bytes is None:
            return [Chunk(chunk, side)]
        sizes: dict[str, int] = {}
        for _ in range(6):  # shrink until every image fits its byte limit
            prepared = {item.id: p for item in chunk if (p := await self._prepared(item, side, ctx)) is not None}
            if not prepared:
                break
            largest = max((p for images in prepared.values() for p in images), key=lambda p: len(p.data))
            if caps.max_image_bytes is None or b64_len(len(largest.data)) <= caps.max_image_bytes:
                sizes = {i: sum(b64_len(len(p.data)) for p in images) for i, images in prepared.items()}
                break
            side = int(max(largest.width, largest.height) * 0.75)
        budget = (caps.max_request_bytes or math.inf) * REQUEST_HEADROOM
        out: list[Chunk] = []
        current: list[ImageItem] = []
        used = 0
        for item in chunk:
            size = sizes.get(item.id, 0)
            if current and used + size > budget:
                out.append(Chunk(current, side))
                current, used = [], 0
            current.append(item)
            used += size
        if current:
            out.append(Chunk(current, side))
        return out

    @staticmethod
    async def _prepared(item: ImageItem, side: int | None, ctx: StrategyContext) -> list[PreparedImage] | None:
        try:
            return [await ctx.prepare(image, side) for image in item.images()]
        except ItemError:
            return None  # ctx.ask records the failure

    async def run(self, items: Sequence[ImageItem], ctx: StrategyContext) -> None:
        caps = ctx.capabilities()
        fitted = [part for chunk in self.chunks(items, caps) for part in await self.fit(chunk, ctx, caps)]

        p = self.params
        auto = p.max_concurrency == "auto"
        limiter = ctx.limiter("auto", ceiling=p.max_concurrency_ceiling) if auto else None

        async def ask(chunk: Chunk) -> None:
            if limiter is None:  # for_each alone holds a fixed concurrency
                await ctx.ask(chunk.items, max_side=chunk.max_side)
            else:
                await ctx.ask(chunk.items, max_side=chunk.max_side, limiter=limiter)

        await for_each(fitted, workers(p.max_concurrency, p.max_concurrency_ceiling), ask)


@hookimpl
def register_strategies(register):
    register(SinglePrompt)
