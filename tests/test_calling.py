import asyncio
import random

import pytest

from visionbench.errors import BadRequest, RateLimited, Transient
from visionbench.run.calling import Caller, Limiter, RetryPolicy
from visionbench.strategy import for_each


class FakeTime:
    """A clock (``visionbench.clock.Clock``) that only moves when the code under test sleeps, recording each sleep."""

    def __init__(self):
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self):
        return self.t

    async def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def failing(errors, value="ok"):
    calls = {"n": 0}

    async def fn():
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return value

    return fn, calls


async def test_retry_after_is_honoured_and_attempts_counted():
    ft = FakeTime()
    caller = Caller(RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=10.0), clock=ft, seed=1)
    fn, calls = failing([RateLimited("429", retry_after=7.5), Transient("503")])
    outcome = await caller.call(fn)
    assert outcome.value == "ok" and outcome.error is None
    assert outcome.attempts == 3 and calls["n"] == 3
    assert 7.5 <= ft.sleeps[0] <= 7.5 * 1.1  # the server's retry-after (and jitter) beats the 0.1 s backoff
    assert 0.1 <= ft.sleeps[1] <= 0.2  # second backoff: jittered in [base*2/2, base*2]
    assert outcome.end_s - outcome.start_s == pytest.approx(sum(ft.sleeps))


async def test_a_retry_after_longer_than_max_delay_fails_the_attempt_at_once_saying_so():
    ft = FakeTime()
    caller = Caller(RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=60), clock=ft)
    fn, calls = failing([RateLimited("gemini HTTP 429", retry_after=86400), Transient("503")])
    outcome = await caller.call(fn)
    assert outcome.value is None and outcome.attempts == 1 and calls["n"] == 1 and ft.sleeps == []
    assert isinstance(outcome.error, RateLimited) and outcome.error.status == 429
    assert str(outcome.error) == (
        "the service asked to wait 86400 s, more than retry.max_delay_s = 60 s; not waiting "
        "(raise retry.max_delay_s to wait that long): gemini HTTP 429"
    )
    # a 503 asking for longer too (Transient keeps its kind); one asking for exactly max_delay_s is waited for
    fn, calls = failing([Transient("503", retry_after=61, overload=True)])
    outcome = await caller.call(fn)
    assert outcome.error.kind == "transient" and outcome.error.overload and "wait 61 s" in str(outcome.error)
    fn, calls = failing([RateLimited("429", retry_after=60)])
    outcome = await caller.call(fn)
    assert outcome.value == "ok" and ft.sleeps == [60]  # jitter never takes a wait past max_delay_s


@pytest.mark.parametrize("asked", [float("inf"), float("nan"), -5.0])
async def test_a_retry_after_that_is_not_a_finite_wait_is_ignored(asked):
    ft = FakeTime()
    caller = Caller(RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1), clock=ft)
    fn, calls = failing([RateLimited("429", retry_after=asked), Transient("503", retry_after=asked)])
    outcome = await caller.call(fn)
    assert outcome.value == "ok" and outcome.attempts == 3
    assert 0.05 <= ft.sleeps[0] <= 0.1 and 0.1 <= ft.sleeps[1] <= 0.2  # the backoff, not forever


def test_waits_for_the_same_retry_after_are_spread_by_jitter():
    policy = RetryPolicy(base_delay_s=0, max_delay_s=60)
    rng = random.Random(3)
    waits = [policy.delay(1, RateLimited("429", retry_after=2.0), rng) for _ in range(100)]
    assert min(waits) >= 2.0 and max(waits) <= 2.2
    assert max(waits) - min(waits) > 0.15  # refused together, they do not all come back at the same instant


async def test_non_retryable_error_stops_at_once():
    ft = FakeTime()
    caller = Caller(RetryPolicy(max_attempts=5), clock=ft)
    fn, calls = failing([BadRequest("bad image")])
    outcome = await caller.call(fn)
    assert isinstance(outcome.error, BadRequest) and outcome.attempts == 1 and ft.sleeps == []


async def test_gives_up_after_max_attempts():
    ft = FakeTime()
    caller = Caller(RetryPolicy(max_attempts=3, base_delay_s=1, max_delay_s=2), clock=ft)
    fn, calls = failing([Transient("a"), Transient("b"), Transient("c"), Transient("d")])
    outcome = await caller.call(fn)
    assert outcome.attempts == 3 and str(outcome.error) == "c" and len(ft.sleeps) == 2
    assert all(s <= 2 for s in ft.sleeps)


def test_timeout_per_attempt_is_transient(virtual):
    caller = Caller(RetryPolicy(max_attempts=2, base_delay_s=0, timeout_s=0.05), clock=virtual)

    async def slow():
        await asyncio.sleep(1)

    outcome = virtual.run(caller.call(slow))
    assert outcome.attempts == 2 and "timeout" in str(outcome.error)
    # On virtual time: two attempts cut off at 0.05 s each, no backoff (base_delay_s=0), not the 2 s asked for.
    assert outcome.end_s - outcome.start_s == pytest.approx(0.1)


async def test_unexpected_exception_becomes_fatal_error():
    caller = Caller(RetryPolicy())

    async def broken():
        raise KeyError("oops")

    outcome = await caller.call(broken)
    assert outcome.error.kind == "fatal" and "KeyError" in str(outcome.error) and outcome.attempts == 1


def test_backoff_grows_exponentially_and_is_capped():
    policy = RetryPolicy(base_delay_s=1, max_delay_s=5)
    rng = random.Random(0)
    delays = [policy.delay(a, Transient("x"), rng) for a in range(1, 7)]
    assert 0.5 <= delays[0] <= 1 and 2 <= delays[2] <= 4 and all(d <= 5 for d in delays)


async def test_limiter_bounds_concurrency():
    limiter = Limiter(max_concurrency=3)
    active = peak = 0

    async def job(_):
        nonlocal active, peak
        async with limiter:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(job(i) for i in range(12)))
    assert peak == 3


def test_limiter_rate_per_minute(virtual):
    async def twenty():
        limiter = Limiter(requests_per_minute=600)  # 10/s, burst of 10
        start = virtual.now()
        for _ in range(20):
            async with limiter:
                pass
        return virtual.now() - start

    # On virtual time (aiolimiter waits on the loop's clock): the first ten go at once, the second ten wait
    # for the bucket to drain at 10/s, about a second.
    assert 0.9 <= virtual.run(twenty()) <= 1.1


async def test_for_each_runs_every_item_bounded():
    seen, active, peak = [], 0, 0

    async def fn(x):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        seen.append(x)
        active -= 1

    await for_each(range(50), 4, fn)
    assert sorted(seen) == list(range(50)) and peak == 4


@pytest.mark.parametrize("mode", ["fixed", "auto"])
def test_waiting_for_a_slot_is_queue_time_not_latency(virtual, mode):
    """Six requests of 1 s each through two slots: under a fixed limit and an adaptive one alike, each request's
    latency is its own 1 s and the wait before its slot is queue time (fixed: 0, 0, 1, 1, 2, 2 s), so a limit that
    queues more does not draw as slower requests."""
    caller = Caller(RetryPolicy(max_attempts=1), clock=virtual)
    if mode == "fixed":
        limiter = Limiter(max_concurrency=2)
    else:
        adaptive = caller.adaptive.get("p", "m", ceiling=2)
        adaptive.limit = 2
        limiter = Limiter(adaptive=adaptive)

    async def one_second():
        await asyncio.sleep(1.0)
        return "ok"

    async def six():
        return await asyncio.gather(*(caller.call(one_second, limiter) for _ in range(6)))

    outcomes = virtual.run(six())
    assert [round(o.end_s - o.start_s, 6) for o in outcomes] == [1.0] * 6
    assert all(o.queue_s == pytest.approx(o.start_s) for o in outcomes)  # all were asked at 0
    assert sum(o.queue_s > 0 for o in outcomes) >= 3  # some did wait
    if mode == "fixed":
        assert sorted(round(o.queue_s, 6) for o in outcomes) == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_waiting_again_for_a_slot_on_a_retry_is_backoff(virtual):
    """A retried request waits for a slot again: that wait is between its attempts (backoff), in its latency."""
    caller = Caller(RetryPolicy(max_attempts=2, base_delay_s=0), clock=virtual)
    limiter = Limiter(max_concurrency=1)
    errors = [Transient("busy")]

    async def flaky():
        await asyncio.sleep(1.0)
        if errors:
            raise errors.pop()
        return "ok"

    async def hog():
        await asyncio.sleep(0.5)  # queues for the slot first: takes it when the first attempt ends
        async with limiter:
            await asyncio.sleep(2.0)

    async def both():
        return (await asyncio.gather(caller.call(flaky, limiter), hog()))[0]

    outcome = virtual.run(both())
    assert outcome.value == "ok" and outcome.attempts == 2 and outcome.queue_s == 0.0
    # attempt 1: 0-1 s; the hog holds the slot 1-3 s; attempt 2: 3-4 s
    assert outcome.end_s - outcome.start_s == pytest.approx(4.0)
    assert outcome.backoff_s == pytest.approx(2.0)
