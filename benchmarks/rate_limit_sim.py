"""``max_concurrency: auto`` against a simulated sliding-window rate limit, on virtual time (takes seconds).

No emulator, no HTTP: ``Caller`` and the adaptive limit, exactly as a run uses them (the ``concurrent``
strategy's workers), call an in-process service that admits ``rps * window`` requests per sliding window and
answers a 429 with the retry-after the emulator would give; an answer takes the latency with lognormal jitter.
Everything runs on ``VirtualClock``, so the figures do not depend on the machine. Printed per case and seed:
requests/s over the whole run as a ratio of the limit, and the share of requests answered 429, for the rule
as it is, the old start rule (AIMD from the start, no slow start), and an oracle that jumps to ``--oracle``
requests in flight at the first pushback and never moves again (what the best possible fall-back would give).

    python benchmarks/rate_limit_sim.py [--seeds 4] [--oracle 16]
"""

from __future__ import annotations

import argparse
import collections
import random
from dataclasses import dataclass

from visionbench.adaptive_limit import AdaptiveLimit
from visionbench.calling import Caller, Limiter, RetryPolicy
from visionbench.clock import VirtualClock
from visionbench.errors import RateLimited
from visionbench.strategy import for_each

CEILING = 64


@dataclass
class Case:
    """A rate limit and a latency, in real seconds (the benchmark's at time_scale 0.05)."""

    name: str
    rps: float
    window_s: float
    latency_s: float
    jitter: float = 0.2


CASES = [Case("issue 22: 20/s, 0.8 s latency", 20, 3.0, 0.8), Case("issue 17: 40/s, 0.2 s latency", 40, 3.0, 0.2)]


def simulate(case: Case, n: int, seed: int, rule: str = "now", oracle: int = 16) -> tuple[float, float]:
    """(requests/s over the run / the limit, share of requests 429'd) for ``n`` requests."""
    clock = VirtualClock()
    rng = random.Random(seed)
    window: collections.deque[float] = collections.deque()
    counts = {"requests": 0, "429": 0}
    # The benchmark's retry policy: the default, its delays scaled by time_scale 0.05.
    caller = Caller(RetryPolicy(max_attempts=4, base_delay_s=0.025, max_delay_s=1.5), clock=clock, seed=seed)
    limit = caller.adaptive.get("sim", "model", CEILING)
    if rule == "old":
        limit.slow_start = False
    elif rule == "oracle":
        limit._pushed_back = _fixed_after_first(limit, oracle)  # type: ignore[method-assign]
    answered: list[float] = []

    async def service() -> str:
        now = clock.now()
        counts["requests"] += 1
        while window and window[0] <= now - case.window_s:
            window.popleft()
        if len(window) >= case.rps * case.window_s:
            counts["429"] += 1
            raise RateLimited("429", retry_after=max(0.001, window[0] + case.window_s - now))
        window.append(now)
        sigma = case.jitter
        await clock.sleep(case.latency_s * rng.lognormvariate(-(sigma**2) / 2, sigma))
        return "ok"

    async def one(_: int) -> None:
        outcome = await caller.call(service, Limiter(adaptive=limit))
        if outcome.error is None:
            answered.append(outcome.end_s)

    clock.run(for_each(range(n), CEILING, one))
    clock.close()
    return len(answered) / max(answered) / case.rps, counts["429"] / counts["requests"]


def _fixed_after_first(limit: AdaptiveLimit, level: int):  # noqa: ANN202
    original = limit._pushed_back

    def pushed_back(exc: BaseException, generation: int) -> None:
        original(exc, generation)
        limit.limit = float(level)

    return pushed_back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--oracle", type=int, default=16, help="the oracle's level (issue 22's case: 20/s x 0.8 s)")
    args = parser.parse_args()
    for case in CASES:
        print(case.name)
        runs = [("now", 300), ("old", 300), ("now", 3000)]
        if case is CASES[0]:
            runs.append(("oracle", 300))
        for rule, n in runs:
            got = [simulate(case, n, seed, rule, args.oracle) for seed in range(args.seeds)]
            figures = "  ".join(f"{ratio:.2f} / {share:.1%}" for ratio, share in got)
            print(f"  {rule:>6} rule, {n:>4} requests: {figures}   (of the limit / 429'd, one per seed)")


if __name__ == "__main__":
    main()
