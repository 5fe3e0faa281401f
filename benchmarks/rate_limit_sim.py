"""``max_concurrency: auto`` against simulated services, on virtual time (takes seconds).

No emulator, no HTTP: ``Caller`` and the adaptive limit, exactly as a run uses them (the ``concurrent``
strategy's workers), call an in-process service; an answer takes the latency with lognormal jitter. Everything
runs on ``VirtualClock``, so the figures do not depend on the machine. The services:

- ``window``: a sliding-window rate limit like the emulator's (``rps * window`` requests per window), a 429
  with the retry-after the emulator would give (until the window's oldest request stops counting);
- ``bucket``: a token bucket (``rps`` tokens a second, ``burst`` at most), a 429 with the time until the next
  token as its retry-after;
- ``capacity``: at most ``capacity`` requests at once, the rest answered 529 (overloaded) with no retry-after;
- ``none``: no limit at all (the ceiling, 64, is what holds auto back).

Printed per case and seed: requests/s over the whole run as a ratio of what the service allows (for
``capacity`` and ``none``, of ``capacity`` or the ceiling per latency), and the share of requests refused
(429 or 529), for 300 requests from a cold start and for 3,000, with the rule as it is and the previous rule
(slow start from 4, the first pushback back to half of the last round trip, AIMD on the number in flight only).

    python benchmarks/rate_limit_sim.py [--seeds 4]
"""

from __future__ import annotations

import argparse
import collections
import random
from dataclasses import dataclass

from visionbench.clock import VirtualClock
from visionbench.errors import RateLimited, Transient
from visionbench.run import adaptive_limit
from visionbench.run.calling import Caller, Limiter, RetryPolicy
from visionbench.strategy import for_each

CEILING = 64


@dataclass
class Case:
    """A service and a latency, in real seconds (the benchmark's at time_scale 0.05)."""

    name: str
    kind: str  # window, bucket, capacity, none
    rps: float  # requests/s the limit allows (window, bucket)
    latency_s: float
    window_s: float = 3.0
    burst: float = 0.0  # bucket: tokens it holds at most
    capacity: int = 0  # capacity: requests at once
    jitter: float = 0.2

    def allows(self) -> float:
        """Requests/s the service allows (capacity, none: what that many in flight carry)."""
        if self.kind == "capacity":
            return self.capacity / self.latency_s
        if self.kind == "none":
            return CEILING / self.latency_s
        return self.rps


CASES = [
    Case("issue 22: window, 20/s in 3 s, 0.8 s latency", "window", 20, 0.8),
    Case("issue 17: window, 40/s in 3 s, 0.2 s latency", "window", 40, 0.2),
    Case("window, 100 a minute, 5 s latency", "window", 100 / 60, 5.0, window_s=60.0),
    Case("token bucket, 20/s, 20 at most, 0.8 s latency", "bucket", 20, 0.8, burst=20),
    Case("capacity: 16 at once (529 beyond), 0.8 s latency", "capacity", 0, 0.8, capacity=16),
    Case("no limit, 0.8 s latency", "none", 0, 0.8),
]


def simulate(case: Case, n: int, seed: int, rule: str = "now") -> tuple[float, float]:
    """(requests/s over the run / what the service allows, share of requests refused) for ``n`` requests."""
    clock = VirtualClock()
    rng = random.Random(seed)
    window: collections.deque[float] = collections.deque()
    bucket = {"tokens": case.burst, "at": 0.0}
    counts = {"requests": 0, "refused": 0, "in": 0}
    # The benchmark's retry policy, its backoff scaled by time_scale 0.05; every retry-after (up to a window of
    # 60 s) within max_delay_s, so none fails an attempt.
    caller = Caller(RetryPolicy(max_attempts=4, base_delay_s=0.025, max_delay_s=60), clock=clock, seed=seed)
    start = adaptive_limit.START
    if rule == "previous":
        adaptive_limit.START = 4  # read when the limit is made and when the first pushback falls back
    limit = caller.adaptive.get("sim", "model", CEILING)
    if rule == "previous":
        limit._learned = lambda exc, started: False  # type: ignore[method-assign]
    answered: list[float] = []

    def admit(now: float) -> None:
        if case.kind == "window":
            while window and window[0] <= now - case.window_s:
                window.popleft()
            if len(window) >= case.rps * case.window_s:
                raise RateLimited("429", retry_after=max(0.001, window[0] + case.window_s - now))
            window.append(now)
        elif case.kind == "bucket":
            bucket["tokens"] = min(case.burst, bucket["tokens"] + (now - bucket["at"]) * case.rps)
            bucket["at"] = now
            if bucket["tokens"] < 1:
                raise RateLimited("429", retry_after=max(0.001, (1 - bucket["tokens"]) / case.rps))
            bucket["tokens"] -= 1
        elif case.kind == "capacity" and counts["in"] >= case.capacity:
            raise Transient("overloaded", status=529, overload=True)

    async def service() -> str:
        counts["requests"] += 1
        try:
            admit(clock.now())
        except (RateLimited, Transient):
            counts["refused"] += 1
            raise
        counts["in"] += 1
        try:
            sigma = case.jitter
            await clock.sleep(case.latency_s * rng.lognormvariate(-(sigma**2) / 2, sigma))
        finally:
            counts["in"] -= 1
        return "ok"

    async def one(_: int) -> None:
        outcome = await caller.call(service, Limiter(adaptive=limit))
        if outcome.error is None:
            answered.append(outcome.end_s)

    try:
        clock.run(for_each(range(n), CEILING, one))
    finally:
        clock.close()
        adaptive_limit.START = start
    return len(answered) / max(answered) / case.allows(), counts["refused"] / counts["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rules", nargs="*", default=["now", "previous"])
    args = parser.parse_args()
    for case in CASES:
        print(case.name)
        for rule in args.rules:
            for n in (300, 3000):
                got = [simulate(case, n, seed, rule) for seed in range(args.seeds)]
                figures = "  ".join(f"{ratio:.2f} / {share:4.1%}" for ratio, share in got)
                print(f"  {rule:>8} rule, {n:>4} requests: {figures}   (of what it allows / refused, one per seed)")


if __name__ == "__main__":
    main()
