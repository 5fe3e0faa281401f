"""The cell's parts (run/recorder.py, cellrun.py, jobs.py): records are whole when made; batch keys as before."""

import pytest

from visionbench.errors import ProviderError
from visionbench.preprocessing import Preprocessing
from visionbench.run.cellrun import CellRun
from visionbench.run.jobs import cell_job_key, job_key
from visionbench.run.recorder import Recorder, Where
from visionbench.strategies.adaptive import AdaptiveTally
from visionbench.strategy import Tally
from visionbench.types import Record, Response, Task, Usage

TASK = Task("count-people", "How many people?")
RUN = CellRun("c1", 2, TASK, Preprocessing(max_side=512), "scripted", "m1", {"temperature": 0})


def recorder() -> tuple[Recorder, list[Record]]:
    kept: list[Record] = []
    return Recorder(RUN, kept.append), kept


def test_a_record_has_its_cell_repeat_and_tier_when_it_is_made():
    rec, kept = recorder()
    seen: list[tuple] = []
    rec._on_record = lambda r: seen.append((r.cell, r.repeat, r.tier, r.max_side)) or kept.append(r)
    reply = Response("3", Usage(input_tokens=10, output_tokens=1), cost_usd=0.5, request_id="r1")
    record = rec.record(Where("other", "m2", 64, 2), ["a.jpg"], 1.0, 2.0, 1, result=reply)
    assert seen == [("c1", 2, 2, 64)]  # already so when handed on: nobody patches it afterwards
    assert kept == [record] and (record.provider, record.model) == ("other", "m2")
    assert record.answers[0].value == 3 and record.cost_usd == 0.5 and record.request_id == "r1"
    # no size asked for: the cell's
    assert rec.record(Where("scripted", "m1", None, None), ["a.jpg"], 0, 0, 1, result=reply).max_side == 512


def test_errors_become_error_answers_one_record_per_item_in_a_batch():
    rec, kept = recorder()
    error = ProviderError("gone", status=404)  # kind "fatal"
    answers = rec.record_each(Where("scripted", "m1", None, None, batch=True), ["a", "b"], 1.0, 3.0, 2, error)
    assert [a.item_id for a in answers] == ["a", "b"] and all(a.error == "fatal: gone" for a in answers)
    assert [(r.item_ids, r.repeat, r.batch, r.end_s, r.attempts) for r in kept] == [
        (["a"], 2, True, 3.0, 2),
        (["b"], 2, True, 3.0, 2),
    ]
    assert kept[0].error == {"kind": "fatal", "message": "gone", "status": 404}


def test_a_cells_batch_key_is_the_key_it_had_before():
    hashes = ["item-0:abc", "item-1:def"]
    before = job_key("c1", 2, "scripted", "m1", TASK, RUN.preprocessing.key(), {"temperature": 0}, item_hashes=hashes)
    assert cell_job_key(RUN, hashes) == before


def test_progress_counts_an_items_first_ask_only():
    def record(tier):
        rec, _ = recorder()
        return rec.record(Where("scripted", "m1", None, tier), ["a", "b"], 0, 0, 1, result=Response("[1, 2]", None))

    for tally in (Tally(), AdaptiveTally(escalate_at=1)):
        assert [tally.progress(record(tier)) for tier in (None, 1, 2)] == [2, 2, 0]


def test_a_record_says_what_its_thinking_cost_and_the_prices_table_shows_its_share():
    """$1 in / $10 out per 1M tokens; 1,000 in, 10 out and 90 thinking tokens: $0.002 in all, of which the 90
    thinking tokens (billed as output) are $0.0009, 45%; in a batch both halve and the share stays."""
    from visionbench.report.prices import prices_sheet
    from visionbench.results.scoring import RecordStats, summarize_cell
    from visionbench.services.pricing import default_table

    prices = default_table().with_overrides([{"match": "m1", "input": 1.0, "output": 10.0}])
    kept: list[Record] = []
    rec = Recorder(RUN, kept.append, prices)
    reply = Response("3", Usage(input_tokens=1000, output_tokens=10, thinking_tokens=90))
    record = rec.record(Where("scripted", "m1", None, None), ["a.jpg"], 0.0, 1.0, 1, result=reply)
    assert record.cost_usd == pytest.approx(0.002) and record.thinking_cost_usd == pytest.approx(0.0009)
    batch = rec.record(Where("scripted", "m1", None, None, batch=True), ["b.jpg"], 0.0, 1.0, 1, result=reply)
    assert batch.cost_usd == pytest.approx(0.001) and batch.thinking_cost_usd == pytest.approx(0.00045)
    plain = rec.record(Where("scripted", "m1", None, None), ["c.jpg"], 0.0, 1.0, 1, result=Response("1", Usage(5, 1)))
    assert plain.thinking_cost_usd == 0.0
    own = rec.record(
        Where("scripted", "m1", None, None), ["d.jpg"], 0, 1, 1, result=Response("1", Usage(5, 1, 9), cost_usd=0.1)
    )
    assert own.thinking_cost_usd is None  # the provider's own total: no split known
    stats = RecordStats()
    for r in kept[:3]:
        stats.add(r)
    summary = summarize_cell([], stats, {}, 1.0)
    summary["items"], summary["errors"] = 3, 0  # the three answered (no items given: none labelled)
    assert summary["thinking_cost_usd"] == pytest.approx(0.00135) and summary["cost_usd"] == pytest.approx(
        0.003015
    )  # + 5 in, 1 out: $0.000015
    bundle = {
        "pricing": {
            "version": "t",
            "sha256": "0" * 64,
            "used": {"scripted/m1": {"match": "m1", "input": 1.0, "output": 10.0, "batch_factor": 0.5}},
        },
        "endpoints": {"scripted": {"plugin": "scripted"}},
        "cells": [{"id": "c1", "provider": "scripted", "model": "m1", "summary": summary}],
    }
    [row] = prices_sheet(bundle).rows
    assert row == ["m1", "$1.00", "$10.00", "x0.5", "45%"]
