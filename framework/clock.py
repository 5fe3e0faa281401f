"""One clock for the run: what time it is and how to wait, injected wherever time matters.

``Caller``, the adaptive limits and the emulator read time and sleep only through a :class:`Clock`, so a test
can run them on :class:`VirtualClock` (time moves only when every task is waiting: no wall time, no load
dependence) and a run uses :data:`REAL_CLOCK`.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """Seconds on a monotonic clock, and a sleep on that same clock."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class RealClock:
    """Wall time: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_CLOCK = RealClock()


@dataclass
class Since:
    """``clock`` read as seconds since ``t0`` (a run's start); it sleeps on ``clock``."""

    clock: Clock
    t0: float

    def now(self) -> float:
        return self.clock.now() - self.t0

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


class VirtualClock:
    """Virtual time for tests: an event loop whose clock jumps to the next timer whenever nothing is ready.

    Everything run by :meth:`run` (``asyncio.sleep``, ``asyncio.timeout``, this clock's ``sleep``) waits on
    virtual time, so a 30 s backoff takes no wall time and two runs of one scenario see the same times. Made for
    code without real I/O or threads: a socket or a worker thread still works, but virtual time may jump
    while it is busy.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = start
        self.loop = _VirtualLoop(self)

    def now(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("VirtualClock.sleep runs only on its own loop (VirtualClock.run)")
        await asyncio.sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (the loop does this itself when every task waits)."""
        self._t += max(0.0, seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to its end on virtual time; the loop stays open for another run until :meth:`close`."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.close()


class _JumpingSelector:
    """A selector that, when asked to wait for a timer with no I/O ready, moves virtual time there instead."""

    def __init__(self, clock: VirtualClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer pending: only I/O can wake the loop
            return self._inner.select(None)
        self._clock.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        self._virtual = clock
        super().__init__(_JumpingSelector(clock))  # type: ignore[arg-type]

    def time(self) -> float:
        return self._virtual.now()


__all__ = ["REAL_CLOCK", "Clock", "RealClock", "Since", "VirtualClock"]
