"""Cell figures gathered record by record give what the whole list of records gave."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from visionbench.results.scoring import RecordStats, percentile, summarize_cell
from visionbench.strategy import Tally
from visionbench.types import Answer, ImageItem, Record, Usage


def _sum_usage(records: list[Record], field: str) -> int | None:
    values = [getattr(r.usage, field) for r in records if r.usage is not None and getattr(r.usage, field) is not None]
    return sum(values) if values else None


def reference_summary(items, records, final, wall_s):
    """The list-based computation the accumulator replaced (as it was), to check against."""
    sent = [r for r in records if r.attempts > 0]
    latencies = [r.latency_s for r in sent]
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    priced_all = len(costs) == sum(1 for r in records if r.error is None and r.attempts)
    cost = sum(costs) if costs and priced_all else None
    return {
        "requests": sum(1 for r in records if r.attempts > 0),
        "attempts": sum(r.attempts for r in records),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
        "latency_p95_s": percentile(latencies, 95),
        "latency_p99_s": percentile(latencies, 99),
        "queue_p50_s": percentile([r.queue_s for r in sent], 50),
        "service_p50_s": percentile([max(0.0, r.latency_s - r.backoff_s) for r in sent], 50),
        "ttft_p50_s": percentile([r.ttft_s for r in sent if r.ttft_s is not None], 50),
        "ttft_p95_s": percentile([r.ttft_s for r in sent if r.ttft_s is not None], 95),
        "output_tokens_per_s_p50": percentile(
            [r.output_tokens_per_s for r in sent if r.output_tokens_per_s is not None], 50
        ),
        "input_tokens": _sum_usage(records, "input_tokens"),
        "output_tokens": _sum_usage(records, "output_tokens"),
        "thinking_tokens": _sum_usage(records, "thinking_tokens"),
        "cost_usd": cost,
        "cost_per_1k_images_usd": cost * 1000 / len(items) if cost is not None and items else None,
    }


def reference_final(records: list[Record]) -> dict[str, Answer]:
    final: dict[str, Answer] = {}
    for record in sorted(records, key=lambda r: r.end_s):
        for answer in record.answers:
            final[answer.item_id] = answer
    return final


def random_records(rng: random.Random, ids: list[str], n: int, *, priced: float, streamed: bool) -> list[Record]:
    records = []
    for _ in range(n):
        chosen = rng.sample(ids, rng.choice([1, 1, 2, 3]))
        start = rng.uniform(0, 50)
        end = start + rng.choice([0.0, rng.expovariate(2)])  # some records end at the same time as others
        attempts = rng.choice([0, 1, 1, 1, 2, 3])
        failed = attempts == 0 or rng.random() < 0.2
        record = Record("c", chosen, "p", "m", None, start, round(end, 1), attempts, 96)
        record.queue_s, record.backoff_s = rng.uniform(0, 0.1), rng.choice([0.0, 0.5])
        if failed:
            record.error = {"kind": "server", "message": "boom"}
            record.answers = [Answer(i, error="server: boom") for i in chosen]
        else:
            usage = Usage(rng.randint(1, 900), rng.choice([None, rng.randint(1, 9)]), rng.choice([None, 3]))
            record.usage = rng.choice([usage, usage, None])
            record.cost_usd = rng.uniform(0, 0.01) if rng.random() < priced else None
            record.answers = [Answer(i, value=rng.randint(0, 5)) for i in chosen]
            if streamed:
                record.ttft_s = rng.uniform(0, 1)
                record.output_tokens_per_s = rng.choice([None, rng.uniform(10, 100)])
        records.append(record)
    return sorted(records, key=lambda r: r.end_s)  # as a cell makes them: each as it finishes


@pytest.mark.parametrize("seed", range(12))
def test_accumulated_summary_equals_the_list_based_one(seed: int) -> None:
    rng = random.Random(seed)
    labels = [rng.choice([None, 1, 2]) for _ in range(30)]
    items = [ImageItem(f"img{i}.png", Path(f"img{i}.png"), f"{i:064x}", label=label) for i, label in enumerate(labels)]
    records = random_records(
        rng, [i.id for i in items], rng.randint(0, 80), priced=rng.choice([0.0, 0.9, 1.0]), streamed=seed % 2 == 0
    )
    stats, tally = RecordStats(), Tally()
    for record in records:
        stats.add(record)
        tally.add(record)
    final = tally.final_answers()
    assert final == reference_final(records)
    assert tally.finished() == set(reference_final(records))
    got = summarize_cell(items, stats, final, 12.5)
    want = reference_summary(items, records, final, 12.5)
    assert {k: got[k] for k in want} == want
    assert got["items"] == 30 and got["images_per_s"] == 30 / 12.5
    assert got["errors"] == sum(1 for i in items if i.id not in final or final[i.id].error is not None)


def test_unknown_usage_and_cost_stay_unknown() -> None:
    record = Record("c", ["a"], "p", "m", None, 0.0, 1.0, 1, 96, usage=Usage(input_tokens=5), answers=[Answer("a", 1)])
    stats = RecordStats()
    stats.add(record)
    summary = summarize_cell([ImageItem("a", Path("a"), "0" * 64)], stats, {"a": Answer("a", 1)}, 1.0)
    assert summary["input_tokens"] == 5 and summary["output_tokens"] is None
    assert summary["cost_usd"] is None  # answered without a price: the bill is unknown, not $0
    assert summary["latency_p50_s"] == 1.0 and math.isclose(summary["service_p50_s"], 1.0)


def test_the_answer_added_last_counts_as_a_resumed_run_adds_them() -> None:
    # The earlier run's error ended at 50 s of its clock; the retry at 3 s of the resumed run's: it still counts.
    earlier = Record("c", ["a"], "p", "m", None, 0.0, 50.0, 1, 96, answers=[Answer("a", error="server: x")])
    retried = Record("c", ["a"], "p", "m", None, 0.0, 3.0, 1, 96, answers=[Answer("a", 2)])
    tally = Tally()
    tally.add(earlier)
    tally.add(retried)
    assert tally.final_answers() == {"a": Answer("a", 2)} and tally.finished() == {"a"}
