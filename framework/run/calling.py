"""The one place where requests are timed, limited, timed out and retried. Every strategy goes through it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter
from pydantic import Field

from visionbench.clock import REAL_CLOCK, Clock, Since
from visionbench.errors import Fatal, ProviderError, RateLimited, Transient
from visionbench.run.adaptive_limit import AdaptiveLimit, AdaptiveLimits
from visionbench.spec import FrozenModel

T = TypeVar("T")


class RetryPolicy(FrozenModel):
    """Exponential backoff with full jitter; a service's retry-after wins when it asks for longer, up to
    ``max_delay_s``: one asking for longer fails the attempt at once (``not_waiting``) instead of sleeping.

    This is the config's ``retry:`` section, used as it is.
    """

    max_attempts: int = Field(default=4, ge=1)
    base_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(
        default=60.0,
        ge=0,
        description="The longest wait between attempts, the service's retry-after included: a service asking for "
        "longer fails the attempt instead (the services' rate windows are a minute).",
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Time allowed for one attempt.")

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        delay = rng.uniform(backoff / 2, backoff)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # At least what the service asked (earlier only earns another 429), and up to a tenth more, so the
            # requests it refused together do not all come back at the same instant; within max_delay_s.
            jittered = min(max(self.max_delay_s, retry_after), retry_after * rng.uniform(1.0, 1.1))
            delay = max(delay, jittered)
        return delay

    def not_waiting(self, error: ProviderError) -> ProviderError | None:
        """The error to end on when ``error``'s retry-after is longer than ``max_delay_s`` (None: wait for it).

        Retrying sooner than asked only earns another refusal, and sleeping for it would hang the run silently
        (a day, for a retry-after of 86400): the attempt fails, saying so, and ``--retry-errors`` asks again later.
        """
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None or retry_after <= self.max_delay_s:
            return None
        message = (
            f"the service asked to wait {retry_after:g} s, more than retry.max_delay_s = {self.max_delay_s:g} s; "
            f"not waiting (raise retry.max_delay_s to wait that long): {error}"
        )
        if isinstance(error, RateLimited):
            return RateLimited(message, retry_after=retry_after, status=error.status)
        return Transient(message, status=error.status, retry_after=retry_after, overload=error.overload)


class Limiter:
    """At most ``max_concurrency`` requests in flight and ``requests_per_minute`` started per minute.

    With ``adaptive``, the number in flight is that limit's, which moves with the service's pushback (and is
    shared with every other limiter of the same provider+model); the rate still applies on top.
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        *,
        adaptive: AdaptiveLimit | None = None,
    ) -> None:
        self.adaptive = adaptive
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        # A bucket of a few seconds' worth, so short runs are not throttled by a full minute's burst.
        if requests_per_minute:
            burst = max(1.0, requests_per_minute / 60.0)
            self._rate: AsyncLimiter | None = AsyncLimiter(burst, burst * 60.0 / requests_per_minute)
        else:
            self._rate = None

    async def __aenter__(self) -> Limiter:
        if self._semaphore is not None:
            await self._semaphore.acquire()
        try:
            if self.adaptive is not None:
                await self.adaptive.__aenter__()
            try:
                if self._rate is not None:
                    await self._rate.acquire()
            except BaseException:
                if self.adaptive is not None:
                    await self.adaptive.__aexit__(None, None, None)
                raise
        except BaseException:
            self._release()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            if self.adaptive is not None:
                # The attempt's outcome (an answer, a 429, an overload) is what the adaptive limit learns from.
                await self.adaptive.__aexit__(exc_type, exc, tb)
        finally:
            self._release()

    def _release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()


@dataclass
class CallOutcome:
    """What happened to one logical request: the result or the last error, attempts and timing."""

    value: object | None
    error: ProviderError | None
    attempts: int
    start_s: float
    end_s: float
    #: Time spent waiting for the first attempt's concurrency/rate slot (client-side queue): before ``start_s``.
    queue_s: float = 0.0
    #: Time spent between attempts: sleeping, and waiting for a slot again.
    backoff_s: float = 0.0


class Caller:
    """Runs provider calls with a timeout per attempt and retries for retryable errors.

    Times are seconds since the caller's ``t0`` (the run's start), on ``clock``; it sleeps (backoff, polling)
    on the same clock, and so do the adaptive limits it hands out.
    """

    def __init__(self, policy: RetryPolicy, *, clock: Clock = REAL_CLOCK, seed: int | None = None) -> None:
        self.policy = policy
        self.clock = clock
        #: The run's clock: seconds since the run began.
        self.elapsed = Since(clock, clock.now())
        self._rng = random.Random(seed)
        #: ``max_concurrency: auto``: one adaptive limit per provider+model for the whole run.
        self.adaptive = AdaptiveLimits(self.elapsed, max_wait_s=policy.max_delay_s)

    @property
    def t0(self) -> float:
        """The clock's time at the run's start (a resumed run moves it back by the time already run)."""
        return self.elapsed.t0

    @t0.setter
    def t0(self, value: float) -> None:
        self.elapsed.t0 = value

    def now(self) -> float:
        return self.elapsed.now()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def call(self, fn: Callable[[], Awaitable[T]], limiter: Limiter | None = None) -> CallOutcome:
        """Call ``fn`` within ``limiter``'s slots, each attempt timed out, retried while retryable.

        The request's time runs from when its first attempt got a slot, under a fixed concurrency and ``auto``
        alike: waiting for that first slot is ``queue_s``, apart from the latency (a request queued behind a
        limit is not a slow request). Waiting again for a slot on a retry is part of retrying: ``backoff_s``.
        """
        asked = self.now()
        start: float | None = None
        attempt = 0
        queue_s = backoff_s = 0.0
        while True:
            attempt += 1
            try:
                waiting = self.now()
                async with limiter if limiter is not None else _NO_LIMIT:
                    if start is None:
                        start = self.now()
                        queue_s = start - asked
                    else:
                        backoff_s += self.now() - waiting
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation (Ctrl-C)
                    # that arrives as the call completes.
                    async with asyncio.timeout(self.policy.timeout_s):
                        value = await fn()
                return CallOutcome(value, None, attempt, start, self.now(), queue_s, backoff_s)
            except TimeoutError:
                error: ProviderError = Transient(f"no reply within {self.policy.timeout_s:g} s (timeout)")
            except ProviderError as exc:
                error = exc
            except Exception as exc:  # a provider bug must cost one item, not the run
                error = Fatal(f"{type(exc).__name__}: {exc}")
            if start is None:  # the limiter itself failed (cancelled): the request never got a slot
                start = self.now()
                queue_s = start - asked
            refused = self.policy.not_waiting(error) if error.retryable else None
            if refused is not None or not error.retryable or attempt >= self.policy.max_attempts:
                return CallOutcome(None, refused or error, attempt, start, self.now(), queue_s, backoff_s)
            delay = self.policy.delay(attempt, error, self._rng)
            await self.sleep(delay)
            backoff_s += delay

    async def poll(
        self,
        fn: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        *,
        initial_s: float,
        max_s: float,
        deadline_s: float,
    ) -> CallOutcome:
        """Call ``fn`` (each call retried like ``call``) until ``done`` says so, waiting between calls.

        The wait starts at ``initial_s`` and doubles up to ``max_s``. The outcome holds the last value, or the
        error that ended the polling: a call that failed for good, or ``deadline_s`` passed without ``done``.
        """
        start = self.now()
        delay, attempts = initial_s, 0
        while True:
            outcome = await self.call(fn)
            attempts += outcome.attempts
            if outcome.error is not None or done(outcome.value):
                return CallOutcome(outcome.value, outcome.error, attempts, start, self.now())
            if self.now() - start + delay > deadline_s:
                error = Transient(f"not done after {deadline_s:g} s of waiting (timeout)")
                return CallOutcome(outcome.value, error, attempts, start, self.now())
            await self.sleep(delay)
            delay = min(max_s, delay * 2)


class _NoLimit:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LIMIT = _NoLimit()

__all__ = ["CallOutcome", "Caller", "Limiter", "RetryPolicy"]
