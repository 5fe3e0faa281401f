"""Reading a cell's images ahead: warm cache hits a window at a time, misses built ahead on every core."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator

from visionbench.data.image_bytes import Preprocessor
from visionbench.preprocessing import Preprocessing
from visionbench.types import ImageItem, PreparedImage


class ReadAhead:
    """Warm cache hits for the items a cell will ask about, looked up a window at a time, in order; and misses
    built ahead, on every core.

    A burst of lookups costs less than the same lookups spread between requests: the cache's SQLite and its
    data stay warm in the CPU's caches (benchmarks/overhead_bench.py shows the effect on requests/s). Holds
    at most a few windows of prepared images; items asked for out of order fall back to a plain lookup.
    When a miss is asked for, the next upcoming misses start building too, one per core (the preprocessor's
    threads), so a strategy that asks one image at a time still keeps every core busy; at most that many are
    held ahead.
    """

    def __init__(
        self, preprocessor: Preprocessor, items: Iterable[ImageItem], settings: Preprocessing, window: int = 32
    ) -> None:
        self.preprocessor, self.settings, self.window = preprocessor, settings, window
        self._upcoming: Iterator[ImageItem] = iter(items)
        self._ready: dict[str, PreparedImage | None] = {}
        self._misses: dict[str, ImageItem] = {}  # upcoming misses, in order
        self._building: dict[str, asyncio.Future[PreparedImage]] = {}

    def lookup(self, item: ImageItem, settings: Preprocessing) -> PreparedImage | None:
        """The cache hit for ``item`` (None: a miss, to be prepared)."""
        if settings is not self.settings and settings != self.settings:
            return self.preprocessor.lookup(item, settings)
        if item.id not in self._ready:
            if len(self._ready) > 4 * self.window:  # asked out of order: do not hoard
                self._ready.clear()
                self._misses.clear()
            for upcoming in itertools.islice(self._upcoming, self.window):
                hit = self._ready[upcoming.id] = self.preprocessor.lookup(upcoming, settings)
                if hit is None:
                    self._misses[upcoming.id] = upcoming
        if item.id in self._ready:
            return self._ready.pop(item.id)
        return self.preprocessor.lookup(item, settings)

    async def build(self, item: ImageItem, settings: Preprocessing) -> PreparedImage:
        """A miss, built on the preprocessor's threads (or already building); starts the next misses too."""
        future = self._building.pop(item.id, None) if settings == self.settings else None
        self._misses.pop(item.id, None)
        if future is None:
            future = self._start(item, settings)
        if settings == self.settings:
            while self._misses and len(self._building) < self.preprocessor.workers - 1:
                upcoming = next(iter(self._misses.values()))
                del self._misses[upcoming.id]
                self._building[upcoming.id] = self._start(upcoming, settings)
        return await future

    def _start(self, item: ImageItem, settings: Preprocessing) -> asyncio.Future[PreparedImage]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.preprocessor.pool, self.preprocessor.build, item, settings)
        # One built ahead and never asked for (the cell stopped) must not warn about an unread error.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future

    def close(self) -> None:
        """Forget what was built ahead and not asked for (it is in the cache anyway)."""
        for future in self._building.values():
            future.cancel()
        self._building.clear()


__all__ = ["ReadAhead"]
