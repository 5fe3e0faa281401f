"""What the reports show for tasks that are not numeric (issue: task reports): json tasks show the share of fields
right next to exact match; tasks that are not numeric show no MAE; JSON answers read whole at 80 columns; report.html
shows the most common JSON answer as JSON."""

from __future__ import annotations

import asyncio
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from visionbench.report.html import cell_table, write_html_report
from visionbench.report.significance import accuracy_intervals, item_scores
from visionbench.report.tables import fit, print_sheet
from visionbench.report.terminal import accuracy_rows, answers_sheet, cells_sheet, difference_rows
from visionbench.results.scoring import field_score

ROOT = Path(__file__).resolve().parents[1]
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}


def _run_demo(name: str, tmp: Path) -> dict[str, Any]:
    """A shipped demo config against an instant emulator without faults (its answer error model kept)."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    source = ROOT / "configs" / f"{name}.yaml"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config["dataset"]["path"] = str((source.parent / config["dataset"]["path"]).resolve())
    profiles = tmp / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    config["emulator"] = {"profiles": str(profiles)}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = load_plan(path, default_registry())
    return bundle_mod.load(asyncio.run(run(plan, results_dir=tmp / "r", cache_dir=tmp / "c")))


@pytest.fixture(scope="module")
def receipts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_demo("receipts-emulated", tmp_path_factory.mktemp("receipts"))


@pytest.fixture(scope="module")
def classify(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_demo("classify-emulated", tmp_path_factory.mktemp("classify"))


def _heads(sheet: Any) -> list[str]:
    return [c.head for c in sheet.columns]


# -- 1. json tasks: the share of fields right, wherever exact match is shown -------------------------------------
def test_a_json_task_shows_the_share_of_fields_right_next_to_exact_match(receipts: dict[str, Any]) -> None:
    cells = cells_sheet(receipts)
    heads = _heads(cells)
    assert heads.index("fields") == heads.index("exact") + 1
    assert "fields" not in fit(cells, 80).hidden  # kept at 80 columns, like exact match
    by_cell = {c["id"]: c["summary"] for c in receipts["cells"]}
    shown = [row[heads.index("fields")] for row in cells.rows]
    assert shown == [f"{s['field_match']:.0%}" for s in by_cell.values()]
    assert any(s["field_match"] > s["exact_match"] for s in by_cell.values())  # a figure exact match hides

    acc = accuracy_rows(receipts)  # the json_fields scorer's mean is the share of fields right
    assert acc.head == ["cell", "images", "json_fields", "exact match"]
    for cell_id, row in zip(by_cell, acc.rows):
        got = accuracy_intervals(receipts, cell_id)["fields"]
        assert got.value == pytest.approx(by_cell[cell_id]["field_match"])  # one repeat: the summary's figure
        assert got.low is not None and got.high is not None and got.low <= got.value <= got.high
        assert row[2] == f"{got.value:.0%} [{got.low:.0%}, {got.high:.0%}]"

    head, rows = cell_table(receipts)
    at = head.index("fields right")
    assert head[at - 1] == "exact" and [r[at] for r in rows] == shown


def test_the_fields_interval_is_over_each_images_field_score(receipts: dict[str, Any]) -> None:
    labels = {i["id"]: i["label"] for i in receipts["items"]}
    cell = receipts["cells"][0]
    scores = item_scores(receipts, cell["id"]).fields
    assert set(scores) == set(labels)
    for item_id, label in labels.items():
        answer = cell["answers"][item_id]
        assert scores[item_id] == field_score(answer["value"], label)


def test_tasks_that_are_not_json_show_no_fields_column(classify: dict[str, Any]) -> None:
    assert "fields" not in _heads(cells_sheet(classify))
    assert "fields" not in accuracy_rows(classify).head
    assert "fields right" not in cell_table(classify)[0]
    assert "fields" not in accuracy_intervals(classify, classify["cells"][0]["id"])


# -- 2. tasks that are not numeric: no MAE column ------------------------------------------------------------------
@pytest.mark.parametrize("demo", ["classify", "receipts"])
def test_a_task_that_is_not_numeric_shows_no_mae(demo: str, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(demo)
    cells = cells_sheet(bundle)
    assert "MAE" not in _heads(cells) and "exact" in _heads(cells)
    assert "MAE" not in fit(cells, 80).hidden  # not merely left out to fit: never there
    primary = {"classify": "classes", "receipts": "json_fields"}[demo]
    assert accuracy_rows(bundle).head[:3] == ["cell", "images", primary] and "MAE" not in accuracy_rows(bundle).head
    assert "MAE" not in cell_table(bundle)[0]
    differences = difference_rows(bundle)
    assert differences is not None and differences.head[1] == primary
    assert "MAE" not in differences.title + differences.caption


# -- 3. JSON answers at 80 columns: one field a line, each whole ------------------------------------------------------
def _printed(sheet: Any, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_sheet(console, sheet, width)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_json_answers_read_one_whole_field_a_line_at_80_columns(receipts: dict[str, Any]) -> None:
    out = _printed(answers_sheet(receipts))
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    for item in receipts["items"]:
        for key, value in item["label"].items():
            piece = f"{key}: {json.dumps(value)}"
            assert any(piece in line for line in out.splitlines()), piece  # never cut mid-value ("2026-" / "02-04")
    for cell in receipts["cells"]:
        for answer in cell["answers"].values():
            for key, value in answer["value"].items():
                assert f"{key}: {json.dumps(value, ensure_ascii=False)}" in out
    assert "{" not in out  # no JSON punctuation around the fields


def test_only_the_fields_that_differ_are_marked(receipts: dict[str, Any]) -> None:
    sheet = answers_sheet(receipts)
    labels = {i["id"]: i["label"] for i in receipts["items"]}
    partly_right = 0
    for column, cell in enumerate(receipts["cells"], start=2):
        for row in sheet.rows:
            label, answer = labels[row[0]], cell["answers"][row[0]]["value"]
            lines = row[column].split("\n")
            assert len(lines) == len(answer)
            marks = [line.startswith("[yellow]") for line in lines]
            assert marks == [key not in label or field_score(v, label[key]) < 1.0 for key, v in answer.items()]
            partly_right += any(marks) and not all(marks)
    assert partly_right  # a wrong answer's right fields are not marked


def test_a_long_json_field_is_cut_with_an_ellipsis() -> None:
    from visionbench.report.terminal import JSON_LINE, _answer_text

    text = _answer_text({"shop": "x" * 100, "items": 2})
    first, second = text.split("\n")
    assert len(first) == JSON_LINE and first.endswith("…") and second == "items: 2"


def test_json_and_markdown_reports_keep_json_answers_whole(receipts: dict[str, Any]) -> None:
    from visionbench.report.terminal import print_report

    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_report(receipts, console, fmt="json")
    doc = json.loads(console.file.getvalue())  # type: ignore[attr-defined]
    [answers] = [t for t in doc["tables"] if t["title"].startswith("Answers")]
    first = receipts["items"][0]
    row = next(r for r in answers["rows"] if r["image"] == first["id"])
    assert json.loads(row["label"]) == first["label"]


# -- 4. report.html: the most common JSON answer as JSON ------------------------------------------------------------
def test_the_most_common_json_answer_is_json(receipts: dict[str, Any], tmp_path: Path) -> None:
    from visionbench.report.stats import agreement

    agree = agreement(receipts)["items"]
    for item in receipts["items"]:
        modal = agree[item["id"]]["modal"]
        assert isinstance(modal, dict)  # the answer itself, not its repr
        firsts = [c["answers"][item["id"]]["value"] for c in receipts["cells"]]
        assert agree[item["id"]]["agreement"] == firsts.count(modal) / len(firsts)
    page = write_html_report(receipts, tmp_path / "report.html", draw_charts=False).read_text()
    assert "{&#x27;" not in page and "{'" not in page  # no Python dict repr anywhere
    label = receipts["items"][0]["label"]
    shown = escape(json.dumps(label, ensure_ascii=False, separators=(", ", ": ")))
    assert page.count(shown) >= 2  # the label, and the most common answer (most cells get it right)


def test_answers_that_differ_only_in_key_order_agree() -> None:
    from visionbench.report.stats import _hashable

    assert _hashable({"a": 1, "b": [2]}) == _hashable({"b": [2], "a": 1}) != _hashable({"a": 1})
    assert _hashable("x") == "x" and _hashable(3) == 3


async def test_an_emulated_run_is_simulated_whatever_its_replies_and_its_csv_says_so(tmp_path, monkeypatch):
    """A run against the emulator in which nothing was answered (every request refused) is still simulated, and
    every row of its CSV carries the mark and the time scale (issue 26, part 4)."""
    import csv
    import io
    import shutil

    import yaml
    from rich.console import Console

    from visionbench.report.terminal import print_report
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    samples = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(samples / name, data_dir / name)
    (data_dir / "labels.json").write_text('{"chelsea.jpg": 0, "coffee.jpg": 0}')
    profiles = tmp_path / "p.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0.5, "models": {"*": {"faults": {"http_500": 1.0}}}}))
    config = {
        "name": "refused",
        "dataset": {"path": str(data_dir), "labels": "labels.json"},
        "task": {"prompt": "How many people?"},
        "emulator": {"profiles": str(profiles), "time_scale": 0.5},
        "retry": {"max_attempts": 1, "timeout_s": 10},
        "matrix": [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    data = bundle_mod.load(await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=None))
    assert all(r["error"] is not None and not r.get("simulated") for r in data["records"])  # no reply said so
    assert data["simulated"] is True
    out = io.StringIO()
    print_report(data, Console(file=out), fmt="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows and all(row["simulated"] == "yes" and row["time_scale"] == "0.5" for row in rows)
