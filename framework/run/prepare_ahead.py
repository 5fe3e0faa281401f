"""Preparing a cell's images before its clock starts, so no cell pays for preprocessing in its times.

Without it, the first cell to use an image size decodes, resizes and encodes every image inside its wall time
and its images/s, and the cells after it find them cached: unlike things compared. Every size the strategy plans
to send (an adaptive cell's low-resolution pass too) is built into the disk cache first, a few at a time on the
preprocessor's threads, and nothing of it is held in memory. The seconds it took are the cell's
``preprocess_s``, apart from its ``wall_s``.

The cache must hold what is built ahead: once what was built passes half the cache's size, the rest is left to be
built during the cell (inside its clock, as before), so a dataset bigger than the cache is never built twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import ItemError
from visionbench.preprocessing import Preprocessing
from visionbench.types import ImageItem


@dataclass(frozen=True)
class PreparedAhead:
    """What was prepared before a cell's clock started: seconds taken, images built, images already cached."""

    seconds: float
    built: int
    cached: int
    #: Images left to be built inside the cell's clock (the cache could not hold them all; or no cache).
    left: int


async def prepare_ahead(
    preprocessor: Preprocessor,
    items: Sequence[ImageItem],
    sizes: Iterable[Preprocessing],
    now: Callable[[], float],
) -> PreparedAhead:
    """Build every image of ``items`` at each of ``sizes`` into the cache; returns what it did and how long it took."""
    start = now()
    images = [image for item in items for image in item.images()]
    settings = list(dict.fromkeys(sizes))
    if not preprocessor.caching:  # nowhere to keep them: built in the cell, as needed
        return PreparedAhead(0.0, 0, 0, len(images) * len(settings))
    loop = asyncio.get_running_loop()
    room = preprocessor.size_limit_bytes // 2
    built = cached = stored = left = 0
    pending: set[asyncio.Future[int]] = set()
    for size in settings:
        for image in images:
            if stored >= room:
                left += 1
                continue
            if preprocessor.has(image, size):
                cached += 1
                continue
            pending.add(loop.run_in_executor(preprocessor.pool, _build, preprocessor, image, size))
            if len(pending) >= 2 * preprocessor.workers:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    size_bytes = future.result()
                    built += size_bytes > 0
                    stored += size_bytes
    for size_bytes in await asyncio.gather(*pending):
        built += size_bytes > 0
        stored += size_bytes
    return PreparedAhead(now() - start, built, cached, left)


def _build(preprocessor: Preprocessor, image: ImageItem, settings: Preprocessing) -> int:
    """Build one image into the cache; its size in bytes (0: it cannot be prepared, which the cell will record)."""
    try:
        return len(preprocessor.build(image, settings).data)
    except ItemError:
        return 0


__all__ = ["PreparedAhead", "prepare_ahead"]
