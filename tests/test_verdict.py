"""The verdict (issue 26, part 1): which cell to pick and why, never resting on a difference the tests call noise."""

from __future__ import annotations

from typing import Any

from visionbench.report.verdict import verdict


def bundle(cells: dict[str, dict[str, Any]], labels: dict[str, Any], decide: dict[str, Any] | None = None) -> dict:
    """A run of ``cells`` (id -> answers by item, cost per 1k, p95 latency) on items of ``labels``."""
    items = [{"id": k, "sha256": f"sha-{k}", "label": v} for k, v in labels.items()]
    entries, records = [], []
    for cell_id, cell in cells.items():
        answers = {k: {"value": v, "error": None if v is not None else "boom"} for k, v in cell["answers"].items()}
        right = sum(1 for k, v in cell["answers"].items() if v is not None and v == labels[k])
        answered = sum(1 for v in cell["answers"].values() if v is not None)
        summary = {
            "items": len(labels),
            "errors": len(labels) - answered,
            "answered": answered,
            "labelled": len(labels),
            "exact_match": right / len(labels),
            "cost_usd": cell["cost"] * len(labels) / 1000,
            "cost_per_1k_images_usd": cell["cost"],
            "latency_p95_s": cell.get("p95", 1.0),
            "wall_s": 1.0,
        }
        entries.append(
            {
                "id": cell_id,
                "repeat": 0,
                "provider": "p",
                "model": "m",
                "strategy": "sequential",
                "label": cell_id,
                "status": "complete",
                "answers": answers,
                "summary": summary,
            }
        )
        records += [{"cell": cell_id, "start_s": 0.0, "end_s": 1.0, "attempts": 1} for _ in labels]
    return {"items": items, "cells": entries, "records": records, "config": {"decide": decide or {}}}


LABELS = {f"i{k}": k % 3 for k in range(12)}


def answers(right: int) -> dict[str, Any]:
    """The first ``right`` items answered right, the others wrong."""
    return {k: (v if n < right else v + 1) for n, (k, v) in enumerate(LABELS.items())}


def test_a_significantly_more_accurate_cell_is_picked_though_dearer() -> None:
    got = verdict(
        bundle({"dear": {"answers": answers(12), "cost": 5.0}, "cheap": {"answers": answers(0), "cost": 1.0}}, LABELS)
    )
    assert got is not None and got.pick == "dear"  # 12 of 12 against 0 of 12: McNemar p = 2 / 2^12
    assert "significantly more than every other cell" in got.why and "exact match 100%" in got.why


def test_when_the_data_cannot_tell_the_cheapest_of_the_untold_is_picked_and_says_so() -> None:
    cells = {"dear": {"answers": answers(11), "cost": 5.0}, "cheap": {"answers": answers(10), "cost": 1.0}}
    got = verdict(bundle(cells, LABELS))
    assert got is not None and got.pick == "cheap"
    assert got.why.startswith("pick cheap: no cell is significantly more accurate on 12 images")
    assert "$1.0000/1k against $5.0000/1k" in got.why


def test_a_cell_far_below_the_best_is_not_picked_on_cost_when_its_interval_rules_it_out() -> None:
    """The best right on 6 of 6 images, the cheap one on 2: McNemar's p = 2 / 2^4 = 0.125, not significant, yet 33%
    is below the best's interval ([54%, 100%]): the best is picked, and the cheap one is named as untold, not as
    equal."""
    labels = {f"i{k}": 1 for k in range(6)}
    cells = {
        "best": {"answers": dict.fromkeys(labels, 1), "cost": 5.0},
        "cheap": {"answers": {k: (1 if n < 2 else 0) for n, k in enumerate(labels)}, "cost": 1.0},
    }
    got = verdict(bundle(cells, labels))
    assert got is not None and got.pick == "best"
    assert "cheap scored lower but on 6 images not significantly so: more images would tell" in got.why


def test_identical_cells_get_no_pick() -> None:
    """A/A: as accurate and as dear: picking one would be picking noise."""
    cells = {name: {"answers": answers(9), "cost": 2.0} for name in "abcd"}
    got = verdict(bundle(cells, LABELS))
    assert got is not None and got.pick is None and got.why.startswith("no pick: a, b, c, d cannot be told apart")


def test_bounds_and_objectives() -> None:
    cells = {
        "accurate": {"answers": answers(12), "cost": 9.0, "p95": 3.0},
        "quick": {"answers": answers(11), "cost": 4.0, "p95": 0.5},
        "cheap": {"answers": answers(2), "cost": 0.5, "p95": 1.0},
    }
    cheapest = verdict(bundle(cells, LABELS, {"objective": "cost", "min": {"exact_match": 0.9}}))
    assert cheapest is not None and cheapest.pick == "quick"  # cheap fails exact_match >= 0.9
    assert cheapest.why == "pick quick: the cheapest of the cells keeping exact_match >= 0.9 ($4.0000/1k)"
    quickest = verdict(bundle(cells, LABELS, {"objective": "latency"}))
    assert quickest is not None and quickest.pick == "quick" and "p95 0.5 s" in quickest.why
    none = verdict(bundle(cells, LABELS, {"max": {"cost_per_1k": 0.1}}))
    assert none is not None and none.pick is None and "cost_per_1k <= 0.1" in none.why
    # the Pareto set: cheap (cheapest), quick (quickest), accurate (most accurate); none beats another on all
    assert verdict(bundle(cells, LABELS)).pareto == ["accurate", "quick", "cheap"]  # type: ignore[union-attr]


def test_cells_that_answered_nothing_are_never_picked() -> None:
    cells = {
        "failed": {"answers": dict.fromkeys(LABELS), "cost": 0.0},
        "works": {"answers": answers(6), "cost": 3.0},
    }
    got = verdict(bundle(cells, LABELS))
    assert got is not None and got.pick == "works" and got.pareto == ["works"]
    nothing = verdict(bundle({"a": cells["failed"], "b": cells["failed"]}, LABELS))
    assert nothing is not None and nothing.pick is None and nothing.why.startswith("no cell answered anything")
    assert verdict(bundle({"one": cells["works"]}, LABELS)) is None  # nothing to choose between
    # unlabelled: "answered" counts labelled items only (0 here), yet both cells answered: the cheaper is picked
    unlabelled = bundle(
        {"dear": {"answers": answers(6), "cost": 3.0}, "cheap": {"answers": answers(6), "cost": 1.0}}, LABELS
    )
    for entry in unlabelled["cells"]:
        entry["summary"].update(answered=0, labelled=0, exact_match=None)
    for item in unlabelled["items"]:
        item["label"] = None
    got = verdict(unlabelled)
    assert got is not None and got.pick == "cheap" and "no labels" in got.why


def test_on_a_numeric_task_exact_counts_can_tie_where_the_errors_do_not() -> None:
    """Both cells count 2 of 12 exactly (the primary score ties), but the best is off by 1 elsewhere and the cheap
    one by 24: its MAE is significantly worse (Wilcoxon, 10 differences one way: p = 2 / 2^10), so it is not
    picked on cost."""
    labels = {f"i{k}": 10 + k for k in range(12)}
    best = {k: (v if n < 2 else v + 1) for n, (k, v) in enumerate(labels.items())}
    far = {k: (v if n < 2 else v + 24) for n, (k, v) in enumerate(labels.items())}
    got = verdict(bundle({"best": {"answers": best, "cost": 5.0}, "cheap": {"answers": far, "cost": 1.0}}, labels))
    assert got is not None and got.pick == "best", got
    assert "significantly more than every other cell" in got.why
