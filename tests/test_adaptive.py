"""The adaptive strategy's tally, record by record, against the list-based rules it replaced."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from visionbench.strategies.adaptive import Adaptive, AdaptiveParams, needs_escalation
from visionbench.types import Answer, ImageItem, Record


def reference(records: list[Record], items: list[ImageItem], escalate_at: float):
    """Final answers, finished items and the filter figures as they were computed from the whole list."""
    final: dict[str, Answer] = {}
    for record in sorted(records, key=lambda r: (r.tier or 0, r.end_s)):
        for answer in record.answers:
            if answer.error is None or answer.item_id not in final or final[answer.item_id].error is not None:
                final[answer.item_id] = answer
    done = {i for r in records if r.tier == 2 for i in r.item_ids}
    for record in records:
        if record.tier == 1:
            done.update(
                a.item_id for a in record.answers if a.error is None and not needs_escalation(a.value, escalate_at)
            )
    escalated = {i for r in records if r.tier == 2 for i in r.item_ids}
    labelled = [item for item in items if item.label is not None]
    truth = {item.id for item in labelled if needs_escalation(item.label, escalate_at)}
    chosen = escalated & {item.id for item in labelled}
    hits = len(chosen & truth)
    figures = {
        "tier2_items": len(escalated),
        "tier1_filter": {
            "escalate_at": escalate_at,
            "precision": hits / len(chosen) if chosen else None,
            "recall": hits / len(truth) if truth else None,
            "true_positives": hits,
            "false_positives": len(chosen - truth),
            "false_negatives": len(truth - chosen),
        },
    }
    return final, done, figures


@pytest.mark.parametrize("seed", range(20))
def test_tally_gives_what_the_records_list_gave(seed: int) -> None:
    rng = random.Random(seed)
    items = [ImageItem(f"i{n}", Path(f"i{n}"), f"{n:064x}", label=rng.choice([None, 0, 1, 3])) for n in range(8)]
    records = []
    for _ in range(rng.randint(0, 40)):
        item = rng.choice(items).id
        tier = rng.choice([1, 1, 2])
        end = float(rng.randint(0, 6))  # few distinct times: ties between records are common
        record = Record("c", [item], "p", "m", tier, 0.0, end, 1, 96)
        if rng.random() < 0.35:
            record.answers = [Answer(item, error="server: boom")]
        else:
            record.answers = [Answer(item, value=rng.randint(0, 3))]
        records.append(record)
    records.sort(key=lambda r: r.end_s)  # as a cell adds them: each as it finishes
    strategy = Adaptive(AdaptiveParams(escalate_at=2))
    tally = strategy.tally()
    for record in records:
        tally.add(record)
    final, done, figures = reference(records, items, 2)
    assert tally.final_answers() == final
    assert tally.finished() == done
    assert tally.summarize(items) == figures


def test_a_failed_tier_2_keeps_the_tier_1_answer_even_when_it_comes_first() -> None:
    tally = Adaptive().tally()
    tally.add(Record("c", ["a"], "p", "m", 2, 0.0, 1.0, 1, 96, answers=[Answer("a", error="server: x")]))
    tally.add(Record("c", ["a"], "p", "m", 1, 0.0, 2.0, 1, 96, answers=[Answer("a", value=4)]))
    assert tally.final_answers() == {"a": Answer("a", value=4)} and tally.finished() == {"a"}
