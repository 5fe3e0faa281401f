"""``max_concurrency: auto``: slow start, then the service's rate window learned from its 429s, and AIMD on the
number in flight.

One :class:`AdaptiveLimit` per provider+model for the whole run (:class:`AdaptiveLimits` hands them out), so
every cell that calls the same model at once shares what it learned, and a later cell starts where an earlier
one left off. The rules:

- start at ``START`` requests in flight; until the service first pushes back (slow start), add 1 per answered
  request, so the limit doubles each round trip and a short run reaches the service's limit in a few round
  trips (16, 32, 64);
- a 429 with a retry-after teaches the service's rate window: it let through every request of ours since
  the first (that it has not refused), and says the oldest of them stops counting when the retry-after has
  passed, so the window is ``quota`` = that many starts in ``window_s`` = from the first start to the end of
  the retry-after. From then on no request starts while the last ``window_s`` seconds hold ``quota`` starts:
  a sliding window of our own, which sends each request the moment the service's window frees a slot (a
  window frees its slots as they were used a window earlier, bursts included) and none before. In flight
  at most ``BURST`` round trips' worth of the window, so such a burst fits through;
- a later 429 with a retry-after means our window is off (the first one, learned after some of the first
  starts had stopped counting, is too long): it is learned again the same way from the starts in our window,
  ``quota`` = those before the refused one, ``window_s`` = from the oldest of them to the end of the
  retry-after. A retry-after under ``MARGIN_S`` only says the request came a moment early: nothing learned;
- the quota grows by a tenth of a start per window's worth of answers, so the probing that earns a 429 (and
  learns the window again) is rare;
- a 429 without a retry-after, or what the provider calls an overload (``ProviderError.overload``: Anthropic's
  529, Gemini's 503), is AIMD on the number in flight: the first ends
  slow start by falling back to ``FALLBACK`` times the requests answered in the last round trip (doubling
  overshot), no lower than ``DECREASE`` times ``START``; every later one multiplies the limit by
  ``DECREASE``, once per round trip (a signal from a request that started before the last decrease, or within
  an average round trip of it, says nothing new). After slow start each answer adds ``1 / limit`` (one more in
  flight per round trip), a tenth of that at or above the level where the service last pushed back;
- a retry-after holds every new request of that model until it has passed (the request that got it waits
  that long anyway, in ``Caller``); one longer than ``max_wait_s`` (the retry policy's ``max_delay_s``: the
  attempt fails instead of waiting) neither holds nor teaches a window: it is a pushback without a retry-after;
- starts are paced, at most ``limit`` per average round trip, so slots that free together (after a retry-after,
  or the two a slow-start answer opens) do not send a burst;
- never below 1, never above the ceiling (``CEILING``, 64, unless the strategy gives another).

Other errors (timeouts, 500s, bad requests) leave the limit as it is: they say nothing about load. Time (round
trips, retry-afters, windows, pacing) is read from the injected :class:`~visionbench.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Any

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.errors import ProviderError, RateLimited
from visionbench.strategy import AUTO_CEILING as CEILING

#: Requests in flight at first. A sliding window echoes its first window's starts in every later one, so how
#: fast slow start fills the first window sets a short run's pace (in the simulation, issue 22's case: 0.95 to 0.98
#: of the limit in 300 requests from 8, 1.01 to 1.02 from 16).
START = 16
DECREASE = 0.7
#: The first pushback ends slow start: back to this share of the requests answered in the last round trip.
FALLBACK = 0.5
#: Share of the additive step used at or above the level of the last decrease.
CAUTION = 0.1
#: A wait shorter than this is not waited for: clock times are floats, and ``now + wait`` may round below the
#: time waited for (on a virtual clock, the same tiny wait would then come back forever).
TOLERANCE_S = 1e-6
#: Points kept of the limit over time; past that, every other one is dropped (the curve's shape stays).
HISTORY_POINTS = 2000
#: Once the window is learned, at most this many round trips' worth of it in flight: a window's slots free in
#: bursts (as they were used a window earlier), and the limit must let a burst through to use them.
BURST = 2.0
#: A start waits this long past the moment the learned window frees its slot (the service's clock and ours
#: disagree by that much: the request's way there, float rounding); a refusal whose retry-after is shorter says
#: only that it came that little too early, not that the window is wrong.
MARGIN_S = 0.005
#: How far back starts are remembered before a window is learned (the services' rate windows are a minute).
HORIZON_S = 60.0


def pushback(error: BaseException | None) -> bool:
    """Whether ``error`` says the service wants fewer requests: a 429, or what the provider calls an overload
    (``ProviderError.overload``: Anthropic's 529, Gemini's 503...). The status alone is never guessed from."""
    return isinstance(error, ProviderError) and error.retryable and error.overload


class AdaptiveLimit:
    """A concurrency limit that moves with the service's pushback; entered around each request attempt."""

    def __init__(
        self, key: str, *, ceiling: int = CEILING, clock: Clock = REAL_CLOCK, max_wait_s: float = 60.0
    ) -> None:
        #: ``clock``: seconds since the run began (the history's times) and its sleep, e.g. ``Caller.elapsed``.
        self.key, self.ceiling, self.clock = key, ceiling, clock
        #: The longest retry-after held for (the retry policy's ``max_delay_s``); a longer one is not waited for.
        self.max_wait_s = max_wait_s
        self.limit = float(min(START, ceiling))
        self.in_flight = 0
        self.pushbacks = 0
        self.decreases = 0
        self._trouble: float | None = None  # the limit when the service last pushed back
        #: Slow start: +1 per answered request (doubling per round trip) until the service first pushes back.
        self.slow_start = True
        self._answer_times: deque[float] = deque()  # when requests were answered, over the last round trip
        self._generation = 0  # bumped by each decrease
        #: The task of each request in flight -> (the generation it started in, when it started).
        self._started: dict[Any, tuple[int, float]] = {}
        self._not_before = 0.0  # clock time before which no request starts (a retry-after)
        self._next_start = 0.0  # clock time of the next paced start
        self._decreased_at = -math.inf
        self._latency = 0.0  # moving average of answered requests' time, for the pacing (0: not known yet)
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Starts of the attempts the service has not refused (answered, or still in flight), oldest first.
        self._starts: deque[float] = deque()
        #: The service's rate window, once learned from a 429's retry-after: at most ``quota`` starts in any
        #: ``window_s`` seconds (``None``: not learned).
        self.window_s: float | None = None
        self.quota = 0.0
        self.history: list[tuple[float, int]] = [(self._now(), int(self.limit))]

    def _now(self) -> float:
        return round(self.clock.now(), 3)

    @property
    def slots(self) -> int:
        return max(1, int(self.limit))

    async def __aenter__(self) -> AdaptiveLimit:
        while True:
            now = self.clock.now()
            wait = max(self._not_before, self._next_start, self._window_frees(now)) - now
            if wait > TOLERANCE_S:
                await self.clock.sleep(wait)
                continue
            if self.in_flight < self.slots:
                break
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            except BaseException:
                if future in self._waiters:
                    self._waiters.remove(future)
                else:
                    self._wake()  # it was handed a turn it will not take: pass it on
                raise
            # Woken: look again (the limit may have fallen, or a retry-after arrived meanwhile).
        self.in_flight += 1
        # Paced: starts spread over a round trip instead of all at once when slots free together (after a
        # retry-after, say), so a burst does not arrive at a window that frees one slot at a time.
        self._next_start = max(self._next_start, now) + self._latency / self.slots
        self._started[asyncio.current_task()] = (self._generation, now)
        self._starts.append(now)
        return self

    def _window_frees(self, now: float) -> float:
        """When the learned window next has room for a start (0: it has room now, or none is learned)."""
        since = now - (self.window_s if self.window_s is not None else HORIZON_S) + TOLERANCE_S
        while self._starts and self._starts[0] <= since:
            self._starts.popleft()
        quota = max(1, int(self.quota))
        if self.window_s is None or len(self._starts) < quota:
            return 0.0
        return self._starts[len(self._starts) - quota] + self.window_s + MARGIN_S

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.in_flight -= 1
        now = self.clock.now()
        generation, started = self._started.pop(asyncio.current_task(), (self._generation, now))
        if exc is None:
            latency = now - started
            self._latency = latency if self._latency == 0 else 0.9 * self._latency + 0.1 * latency
            self._answer_times.append(now)
            self.carried()  # drops the answers older than a round trip
            self._answered()
        elif pushback(exc):
            with contextlib.suppress(ValueError):
                self._starts.remove(started)  # refused: the service's window does not count it
            if not self._learned(exc, started):
                self._pushed_back(exc, generation)
        self._wake()

    def _answered(self) -> None:
        before = self.slots
        if self.slow_start:
            step = 1.0  # each answer frees its slot and adds one: twice as many in flight per round trip
        else:
            step = 1.0 / self.limit
            if self._trouble is not None and self.limit >= self._trouble:
                step *= CAUTION
        self.limit = min(float(self.ceiling), self.limit + step)
        if self.window_s is not None:
            # A tenth of a start more per window's worth of answers: the probing that earns a 429 is rare.
            self.quota += CAUTION / max(1.0, self.quota)
        if self.slots != before:
            self._note()

    def _retry_after(self, exc: BaseException) -> float | None:
        """``exc``'s retry-after, if it is one to wait for (not longer than ``max_wait_s``)."""
        retry_after = getattr(exc, "retry_after", None)
        return retry_after if retry_after is not None and retry_after <= self.max_wait_s else None

    def _learned(self, exc: BaseException, started: float) -> bool:
        """A 429 with a retry-after: learn (or tighten) the service's window from it; False if it says nothing."""
        retry_after = self._retry_after(exc)
        if not isinstance(exc, RateLimited) or not retry_after:
            return False
        if retry_after < MARGIN_S and self.window_s is not None:
            self.pushbacks += 1
            self._hold(retry_after)
            return True  # a moment early: the window is right
        # What it let through before refusing: every start of ours the first time, those in our window later.
        before = [t for t in self._starts if t < started]
        if self.window_s is not None:
            before = [t for t in before if t > started - self.window_s]
        if not before:
            return False  # nothing of ours counted: it says nothing about our rate
        # It counted these, and the oldest stops counting when the retry-after has passed: that is the window.
        self.pushbacks += 1
        self._hold(retry_after)
        self.window_s = self.clock.now() + retry_after - before[0]
        self.quota = float(len(before))
        self.slow_start = False
        self.decreases += 1
        # In flight: BURST round trips' worth of the window (a burst of freed slots must fit through); a window's
        # worth while no answer has come back to time a round trip.
        allowed = BURST * self.quota * self._latency / self.window_s if self._latency > 0 else self.quota
        self.limit = max(1.0, min(self.limit, allowed))
        self._note()
        return True

    def _hold(self, retry_after: float) -> None:
        self._not_before = max(self._not_before, self.clock.now() + retry_after)

    def _pushed_back(self, exc: BaseException, generation: int) -> None:
        self.pushbacks += 1
        retry_after = self._retry_after(exc)
        if retry_after:
            self._hold(retry_after)
        if generation != self._generation or self.clock.now() - self._decreased_at < self._latency:
            # Started before the last decrease, or within a round trip of it: that decrease has not had time
            # to show (a 429 comes back in milliseconds, an answer takes a round trip).
            return
        self._decreased_at = self.clock.now()
        self._trouble = self.limit
        if self.slow_start:
            # Doubling overshot (by up to twice, and more where a rate limit's window let a burst through):
            # back to what the last round trip carried, or DECREASE if that is lower.
            self.slow_start = False
            level = max(FALLBACK * self.carried(), DECREASE * START)
            self.limit = max(1.0, min(self.limit * DECREASE, level))
        else:
            self.limit = max(1.0, self.limit * DECREASE)
        self._generation += 1
        self.decreases += 1
        self._note()

    def carried(self) -> int:
        """Requests answered in the last round trip (an average one, measured on the clock)."""
        since = self.clock.now() - self._latency
        while self._answer_times and self._answer_times[0] < since:
            self._answer_times.popleft()
        return len(self._answer_times)

    def _wake(self) -> None:
        free = self.slots - self.in_flight
        while free > 0 and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                free -= 1

    def _note(self) -> None:
        self.history.append((self._now(), self.slots))
        if len(self.history) > HISTORY_POINTS:
            self.history = self.history[::2] + ([self.history[-1]] if len(self.history) % 2 == 0 else [])

    def counts(self) -> tuple[int, int]:
        """(pushbacks, decreases) so far, over the whole run: a cell takes them at its start to report its own."""
        return self.pushbacks, self.decreases

    def summary(self, since_s: float = 0.0, before: tuple[int, int] = (0, 0)) -> dict[str, Any]:
        """What the bundle keeps: the limit over time (seconds since the run began) from ``since_s`` on, and the
        pushbacks and decreases since ``before`` (``counts()`` at the cell's start: a later cell on the same model
        does not report an earlier one's)."""
        points = [[t, n] for t, n in self.history if t >= since_s]
        if not points or points[0][0] > since_s:
            earlier = [[t, n] for t, n in self.history if t < since_s]
            if earlier:
                points.insert(0, [since_s, earlier[-1][1]])
        return {
            "key": self.key,
            "ceiling": self.ceiling,
            "final": self.slots,
            "pushbacks": self.pushbacks - before[0],
            "decreases": self.decreases - before[1],
            # The service's rate window as learned (at most this many starts in that many seconds), if one was.
            "window": None
            if self.window_s is None
            else {"requests": int(self.quota), "seconds": round(self.window_s, 3)},
            "history": points,
        }


class AdaptiveLimits:
    """The run's adaptive limits, one per provider+model (and ceiling), created when first asked for."""

    def __init__(self, clock: Clock = REAL_CLOCK, *, max_wait_s: float = 60.0) -> None:
        self.clock, self.max_wait_s = clock, max_wait_s
        self._limits: dict[tuple[str, str, int], AdaptiveLimit] = {}

    def get(self, provider: str, model: str, ceiling: int = CEILING) -> AdaptiveLimit:
        key = (provider, model, ceiling)
        if key not in self._limits:
            self._limits[key] = AdaptiveLimit(
                f"{provider}/{model}", ceiling=ceiling, clock=self.clock, max_wait_s=self.max_wait_s
            )
        return self._limits[key]


__all__ = ["CEILING", "AdaptiveLimit", "AdaptiveLimits", "pushback"]
