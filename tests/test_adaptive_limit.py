"""``max_concurrency: auto``: slow start, the learned window, AIMD, and end to end against the emulator's rate limit."""

import asyncio
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from visionbench.errors import BadRequest, RateLimited, Transient
from visionbench.results import bundle as bundle_mod
from visionbench.run.adaptive_limit import (
    BURST,
    CEILING,
    DECREASE,
    FALLBACK,
    MARGIN_S,
    START,
    AdaptiveLimit,
    AdaptiveLimits,
    pushback,
)
from visionbench.run.calling import Caller, Limiter, RetryPolicy
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry
from visionbench.run.runner import run
from visionbench.strategies.adaptive import AdaptiveParams
from visionbench.strategies.concurrent import ConcurrentParams
from visionbench.strategies.single_prompt import SinglePromptParams

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"


async def attempt(limit, error=None, hold_s=0.0):
    """One request attempt through ``limit``: answered, or failed with ``error`` after ``hold_s`` on its clock."""
    try:
        async with limit:
            await limit.clock.sleep(hold_s)
            if error is not None:
                raise error
    except (RateLimited, Transient, BadRequest) as exc:
        assert exc is error


def test_which_errors_are_pushback():
    assert pushback(RateLimited("429"))
    assert pushback(Transient("overloaded", status=529, overload=True)) and pushback(
        Transient("unavailable", status=503, overload=True)
    )
    assert not pushback(Transient("internal", status=500)) and not pushback(Transient("timeout"))
    assert not pushback(BadRequest("bad", status=503)) and not pushback(None)


def end_slow_start(limit, virtual):
    """A first pushback, then a round trip (1 s) later: the limit is in its AIMD phase."""
    virtual.run(attempt(limit, hold_s=1.0))
    virtual.run(attempt(limit, RateLimited("429")))
    virtual.advance(1.0)
    assert not limit.slow_start and limit.decreases == 1


async def round_trip(limit):
    """As many requests as the limit allows, each taking 1 s; returns how many were sent."""
    n = limit.slots
    await asyncio.gather(*(attempt(limit, hold_s=1.0) for _ in range(n)))
    return n


def test_slow_start_doubles_the_limit_each_round_trip_up_to_the_ceiling(virtual):
    limit = AdaptiveLimit("p/m", ceiling=100, clock=virtual)
    assert limit.limit == START == 16 and limit.slow_start
    virtual.run(attempt(limit))
    assert limit.limit == START + 1  # slow start: one more per answered request
    limit.limit = START
    sizes = [virtual.run(round_trip(limit)) for _ in range(3)]
    assert sizes == [16, 32, 64] and limit.limit == 100  # doubled each round trip, then held at the ceiling
    assert [n for _, n in limit.history][-1] == 100 and limit.slow_start and limit.decreases == 0


def test_the_first_pushback_falls_back_to_what_the_last_round_trip_carried(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    for _ in range(2):
        virtual.run(round_trip(limit))  # 16, then 32 answered: the limit is 64
    assert limit.limit == 64 and limit.carried() == 32
    virtual.run(attempt(limit, RateLimited("429")))  # no retry-after: nothing to learn a window from
    # Not 64 * 0.7 = 44.8: the last round trip carried 32 without pushback; FALLBACK of that.
    assert limit.limit == pytest.approx(FALLBACK * 32) and not limit.slow_start and limit.decreases == 1
    assert limit.window_s is None


def test_a_pushback_before_any_answer_falls_back_no_lower_than_from_the_start(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    virtual.run(attempt(limit, RateLimited("429")))
    assert limit.limit == pytest.approx(START * DECREASE) and not limit.slow_start


def learn_window(limit, virtual):
    """START starts at t=0 answered at t=1, then at t=1.5 a 429 saying the oldest counted stops counting at t=3."""
    virtual.run(round_trip(limit))
    virtual.advance(0.5)
    virtual.run(attempt(limit, RateLimited("429", retry_after=1.5)))


def test_a_429_with_a_retry_after_teaches_the_window_and_starts_keep_to_it(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    learn_window(limit, virtual)
    # Everything let through since the first start (16, at t=0), until the end of the retry-after (t=3).
    assert limit.window_s == pytest.approx(3.0) and limit.quota == START and not limit.slow_start
    assert limit.summary()["window"] == {"requests": START, "seconds": 3.0}
    assert limit.pushbacks == limit.decreases == 1
    # In flight: BURST round trips' worth of the window (16 per 3 s, round trips of 1 s), not the 32 of slow start.
    assert limit.slots == int(BURST * START * 1.0 / 3.0)
    starts = []

    async def one():
        async with limit:
            starts.append(virtual.now())
            await virtual.sleep(0.1)

    async def many():
        await asyncio.gather(*(one() for _ in range(2 * START + 4)))

    virtual.run(many())
    # Held until the retry-after passed, then 16 starts in each window (never more), each as soon as the window
    # frees the slot of a start a window earlier.
    assert min(starts) == pytest.approx(3.0 + MARGIN_S)
    everything = [0.0] * START + starts
    assert all(sum(1 for u in everything if t - 3.0 < u <= t) <= START for t in everything)
    assert [sum(1 for t in starts if k * 3.0 <= t < (k + 1) * 3.0) for k in (1, 2, 3)] == [START, START, 4]
    assert starts[START] == pytest.approx(starts[0] + 3.0 + MARGIN_S)


def test_a_later_429_learns_the_window_again_from_the_starts_in_it(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    learn_window(limit, virtual)  # 16 in 3 s, the first 16 started at t=0
    virtual.advance(2.0)  # t=3.5: the retry-after has passed
    virtual.run(attempt(limit, hold_s=0.5))  # started at 3.5
    virtual.run(attempt(limit, hold_s=0.5))  # at 4.0
    # Refused at 4.5 though our window (1.5 to 4.5) held 2 of 16: the service counts those 2, and says the oldest
    # (3.5) stops counting at 4.6. A window of 2 in 1.1 s.
    virtual.run(attempt(limit, RateLimited("429", retry_after=0.1)))
    assert limit.quota == 2 and limit.window_s == pytest.approx(1.1) and limit.decreases == 2


def test_a_429_a_moment_early_learns_nothing(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    learn_window(limit, virtual)
    virtual.advance(2.0)
    virtual.run(attempt(limit, RateLimited("429", retry_after=MARGIN_S / 2)))
    assert limit.quota == START and limit.window_s == pytest.approx(3.0)
    assert limit.pushbacks == 2 and limit.decreases == 1


def test_the_learned_quota_grows_by_a_tenth_of_a_start_per_window_of_answers(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    learn_window(limit, virtual)
    virtual.advance(2.0)
    for _ in range(START):
        virtual.run(attempt(limit, hold_s=0.01))
    assert limit.quota == pytest.approx(START + 0.1, rel=0.01)


def test_a_retry_after_longer_than_the_wait_allowed_neither_holds_nor_teaches_a_window(virtual):
    async def start(limit):
        async with limit:
            return virtual.now()

    limit = AdaptiveLimit("p/m", clock=virtual, max_wait_s=60)
    virtual.run(round_trip(limit))  # 16 starts at t=0, answered at t=1
    virtual.run(attempt(limit, RateLimited("429", retry_after=86400)))
    # a pushback like a 429 without a retry-after: AIMD, no window of a day, nothing held
    assert limit.window_s is None and limit.pushbacks == limit.decreases == 1 and limit.slots < 2 * START
    assert virtual.run(start(limit)) < 1.1  # at once (paced), not a day later
    # within the wait allowed, the same 429 holds every start of the model until it has passed
    held = AdaptiveLimit("p/m", clock=virtual, max_wait_s=60)
    virtual.run(attempt(held, RateLimited("429", retry_after=30)))
    assert virtual.run(start(held)) == pytest.approx(1.0 + 30, abs=0.1)


def test_a_429_without_a_retry_after_or_an_overload_learns_no_window(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    virtual.run(round_trip(limit))
    virtual.run(attempt(limit, RateLimited("429")))
    virtual.run(attempt(limit, Transient("overloaded", status=529, overload=True)))
    assert limit.window_s is None and limit.summary()["window"] is None and limit.decreases == 1


def test_after_the_first_pushback_each_answer_adds_one_over_the_limit_up_to_the_ceiling(virtual):
    limit = AdaptiveLimit("p/m", ceiling=24, clock=virtual)
    end_slow_start(limit, virtual)
    before = limit.limit
    virtual.run(attempt(limit))
    assert limit.limit == pytest.approx(before + 1 / before)  # AIMD: one more in flight per round trip
    before = limit.limit
    sent = virtual.run(round_trip(limit))
    assert limit.limit == pytest.approx(before + sent / before, rel=0.05) and limit.slots < 2 * sent
    for _ in range(2000):
        virtual.run(attempt(limit))
    assert limit.limit == 24 and limit.slots == 24
    assert limit.history[0][1] == START and limit.history[-1][1] == 24


def test_a_429_cuts_the_limit_once_per_round_trip(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    end_slow_start(limit, virtual)

    async def scenario():
        for _ in range(60):
            await attempt(limit, hold_s=0.01)  # round trips of 10 ms (the average forgets end_slow_start's 1 s)
        before = limit.limit
        # Three requests in flight together are all refused: one decrease, not three.
        await asyncio.gather(*(attempt(limit, RateLimited("429"), hold_s=0.001) for _ in range(3)))
        assert limit.limit == pytest.approx(before * DECREASE)
        assert limit.pushbacks == 4 and limit.decreases == 2
        # Refused again within a round trip of that decrease: nothing new.
        await attempt(limit, RateLimited("429"))
        assert limit.decreases == 2
        # Started after that decrease and a round trip later: a new signal, a new decrease.
        await virtual.sleep(0.02)
        await attempt(limit, RateLimited("429"))
        assert limit.decreases == 3 and limit.limit == pytest.approx(before * DECREASE**2)

    virtual.run(scenario())


def test_other_errors_leave_the_limit_alone(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    virtual.run(attempt(limit, Transient("internal", status=500)))
    virtual.run(attempt(limit, BadRequest("bad")))
    assert limit.limit == START and limit.pushbacks == 0


def test_never_below_one(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    for _ in range(10):
        virtual.run(attempt(limit, Transient("overloaded", status=529, overload=True)))
        limit._decreased_at = -1e9  # as if a round trip had passed each time
    assert limit.limit == 1 and limit.slots == 1


def test_a_retry_after_holds_every_new_request(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)
    virtual.run(attempt(limit, RateLimited("429", retry_after=0.15)))
    start = virtual.now()
    virtual.run(attempt(limit))
    assert virtual.now() - start == pytest.approx(0.15)  # held exactly until the retry-after passed
    assert limit.window_s is None  # nothing of ours was let through before it: no window to learn


def test_in_flight_never_exceeds_the_limit(virtual):
    limit = AdaptiveLimit("p/m", ceiling=24, clock=virtual)
    peak = 0

    async def one():
        nonlocal peak
        async with limit:
            peak = max(peak, limit.in_flight)
            assert limit.in_flight <= limit.slots
            await virtual.sleep(0.002)

    async def hundred():
        await asyncio.gather(*(one() for _ in range(100)))

    virtual.run(hundred())
    assert START < peak <= 24 and limit.in_flight == 0


def test_a_cancelled_waiter_gives_its_turn_on(virtual):
    limit = AdaptiveLimit("p/m", ceiling=1, clock=virtual)
    limit.limit = 1.0

    async def scenario():
        release = asyncio.Event()

        async def holder():
            async with limit:
                await release.wait()

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(attempt(limit))
        other = asyncio.ensure_future(attempt(limit))
        await virtual.sleep(0.01)
        assert limit.in_flight == 1 and len(limit._waiters) == 2
        waiter.cancel()
        release.set()
        await asyncio.wait_for(asyncio.gather(first, other), 1)
        assert waiter.cancelled() and limit.in_flight == 0

    virtual.run(scenario())


def test_the_caller_feeds_the_limit_and_retries_past_a_429(virtual):
    caller = Caller(RetryPolicy(max_attempts=3, base_delay_s=0.0, max_delay_s=1.0), clock=virtual)
    adaptive = caller.adaptive.get("gemini", "gemini-3.5-flash")
    errors = [RateLimited("429", retry_after=0.01)]

    async def fn():
        if errors:
            raise errors.pop()
        return "ok"

    outcome = virtual.run(caller.call(fn, Limiter(adaptive=adaptive)))
    assert outcome.value == "ok" and outcome.attempts == 2
    assert 0.01 <= outcome.backoff_s <= 0.011  # the retry-after (and its jitter), on the caller's clock
    assert adaptive.pushbacks == 1 and adaptive.decreases == 1 and adaptive.in_flight == 0


def test_one_limit_per_provider_and_model():
    limits = AdaptiveLimits()
    a = limits.get("gemini", "gemini-3.5-flash")
    assert limits.get("gemini", "gemini-3.5-flash") is a
    assert limits.get("gemini", "gemini-3.5-flash-lite") is not a
    assert limits.get("anthropic", "gemini-3.5-flash") is not a
    assert limits.get("gemini", "gemini-3.5-flash", ceiling=8).ceiling == 8


def test_the_summary_covers_the_cell_from_its_start(virtual):
    limit = AdaptiveLimit("p/m", clock=virtual)  # history starts at t=0 with START
    limit.limit = 9.5
    virtual.advance(1.0)
    limit._note()  # t=1
    limit.limit = 12
    virtual.advance(1.0)
    limit._note()  # t=2
    summary = limit.summary(since_s=1.5)
    assert summary["history"] == [[1.5, 9], [2.0, 12]] and summary["final"] == 12
    assert summary["key"] == "p/m" and summary["ceiling"] == CEILING


@pytest.mark.parametrize("params", [ConcurrentParams, SinglePromptParams, AdaptiveParams])
def test_the_strategies_take_auto_or_a_number(params):
    assert params(max_concurrency="auto").max_concurrency == "auto"
    assert params(max_concurrency=3).max_concurrency == 3
    for bad in ("fast", 0, -1):
        with pytest.raises(ValidationError):
            params(max_concurrency=bad)


def experiment(tmp_path, strategies, rate_limit, models=("gemini-3.5-flash",)):
    profile = {
        "latency": {"base_s": 0.02, "per_input_token_s": 0, "output_tokens_per_s": 1e9, "jitter": 0},
        "capacity": 100,
        "rate_limit": rate_limit,
        "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0, "slow": {"probability": 0}},
        "answers": {"relative_sd": 0, "absolute_sd": 0},
    }
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 1.0, "defaults": profile, "models": {"*": {}}}))
    config = {
        "name": "auto",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count"},
        "task": {"prompt": "How many people are in this image? Answer with a single integer.", "answer": "integer"},
        "preprocessing": {"max_side": 128},
        "emulator": {"profiles": str(profiles)},
        "retry": {"max_attempts": 10, "base_delay_s": 0.01, "max_delay_s": 1.0, "timeout_s": 20},
        "matrix": [{"provider": "gemini", "models": list(models), "strategies": strategies}],
    }
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def run_it(path, tmp_path):
    plan = load_plan(path, default_registry())
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    return data


async def test_auto_backs_off_at_the_emulators_rate_limit_and_answers_everything(tmp_path):
    # 3 requests per 0.3 s window: 10 images at 16 in flight run into it at once.
    limit = {"requests_per_minute": 3, "window_s": 0.3}
    data = await run_it(experiment(tmp_path, [{"name": "concurrent", "max_concurrency": "auto"}], limit), tmp_path)
    [cell] = data["cells"]
    assert cell["summary"]["errors"] == 0 and data["status"] == "complete"
    concurrency = cell["extra"]["concurrency"]
    [used] = concurrency["limits"]
    assert concurrency["mode"] == "auto" and used["key"] == "gemini/gemini-3.5-flash"
    assert used["pushbacks"] >= 1 and used["decreases"] >= 1
    assert used["history"][0][1] == START and min(n for _, n in used["history"]) < START
    assert used["window"] is not None  # learned from the emulator's retry-after
    assert any(r["attempts"] > 1 for r in data["records"])  # the refused requests were asked again


async def test_cells_on_one_model_share_the_limit_and_fixed_cells_record_none(tmp_path):
    strategies = [
        {"name": "concurrent", "max_concurrency": "auto"},
        {"name": "single-prompt", "chunk_size": 2, "max_concurrency": "auto"},
        {"name": "adaptive", "max_concurrency": "auto", "tier1": {"model": "gemini-3.5-flash-lite"}},
        {"name": "concurrent", "max_concurrency": 2},
    ]
    data = await run_it(experiment(tmp_path, strategies, {"requests_per_minute": None}), tmp_path)
    cells = {c["id"]: c for c in data["cells"]}
    assert all(c["summary"]["errors"] == 0 for c in cells.values())
    first = cells["gemini/gemini-3.5-flash/concurrent@max_concurrency=auto"]["extra"]["concurrency"]["limits"]
    single = cells["gemini/gemini-3.5-flash/single-prompt"]["extra"]["concurrency"]["limits"]
    adaptive = cells["gemini/gemini-3.5-flash/adaptive"]["extra"]["concurrency"]["limits"]
    assert [x["key"] for x in first] == [x["key"] for x in single] == ["gemini/gemini-3.5-flash"]
    # The later cell starts where the earlier one left off: one limit for the model, for the whole run.
    assert single[0]["history"][0][1] == first[0]["final"] > START
    assert sorted(x["key"] for x in adaptive) == ["gemini/gemini-3.5-flash", "gemini/gemini-3.5-flash-lite"]
    assert "concurrency" not in cells["gemini/gemini-3.5-flash/concurrent@max_concurrency=2"]["extra"]


async def test_a_later_cell_on_the_same_model_reports_only_its_own_pushbacks(tmp_path):
    """Two auto cells share one limit; each reports the pushbacks and decreases of its own time, which add up to
    the run's, and never more than its own refused attempts."""
    limit = {"requests_per_minute": 3, "window_s": 0.3}
    strategies = [
        {"name": "concurrent", "max_concurrency": "auto", "label": "first"},
        {"name": "concurrent", "max_concurrency": "auto", "label": "second"},
    ]
    data = await run_it(experiment(tmp_path, strategies, limit), tmp_path)
    used = {c["label"]: c["extra"]["concurrency"]["limits"][0] for c in data["cells"]}
    for label in ("first", "second"):
        cell_id = next(c["id"] for c in data["cells"] if c["label"] == label)
        refused = sum(r["attempts"] - 1 for r in data["records"] if r["cell"] == cell_id)
        assert used[label]["pushbacks"] <= refused, (label, used[label]["pushbacks"], refused)
    assert used["second"]["pushbacks"] < used["first"]["pushbacks"] + used["second"]["pushbacks"]
