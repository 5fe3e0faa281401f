"""Scores in the reports (issue 25): each scorer's mean with its 95% interval, the primary first; the glance
figures (macro-F1, balanced accuracy, whole objects); the per-class table and the confusion matrix in report.html;
the paired tests fed the primary scorer's per-image scores; compare, the gallery and the chart; a breakdown by a
row field (group_by); a bundle without scores, or naming a scorer that is not installed, still reports."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import fakeplugin
import fakescorer
import pytest
import yaml
from PIL import Image
from rich.console import Console

import visionbench.run.plugins as plugins
from visionbench.report.compare import compare, print_comparison
from visionbench.report.html import write_html_report
from visionbench.report.scores import bundle_scores
from visionbench.report.significance import interval
from visionbench.report.terminal import accuracy_rows, difference_rows, group_rows, print_report
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run

REGISTRY = collect(make_manager([fakeplugin, fakescorer]))


def _rows_run(tmp: Path, task: dict[str, Any], rows: list[dict[str, Any]], answers: dict[str, dict[str, Any]]) -> dict:
    """A run of a rows dataset (one small image per row), one cell per model, each answering from ``answers``."""
    images = tmp / "images"
    images.mkdir()
    for n, row in enumerate(rows):
        Image.new("RGB", (16 + n, 16), (n * 10 % 255, 90, 160)).save(images / f"{row['id']}.png")
    lines = [json.dumps({"image": f"images/{row['id']}.png", **row}) for row in rows]
    (tmp / "rows.jsonl").write_text("\n".join(lines) + "\n")
    config = {
        "name": "scores",
        "dataset": {"path": str(tmp / "rows.jsonl")},
        "task": task,
        "retry": {"max_attempts": 1, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 5},
        "providers": {model: {"plugin": "scripted", "answers": table} for model, table in answers.items()},
        "matrix": [{"provider": model, "models": [model], "strategies": ["sequential"]} for model in answers],
    }
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    data = bundle_mod.load(asyncio.run(run(load_plan(path, REGISTRY), results_dir=tmp / "results")))
    bundle_mod.validate(data)
    return data


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reports rebuild scorers from the installed plugins: here the built-ins and the third-party test one."""
    monkeypatch.setattr(plugins, "_default", REGISTRY)


@pytest.fixture(scope="module")
def classify(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """20 images, 10 cats and 10 dogs; model a gets 19 right (d0 answered cat), model b 15 (d0-d4 answered cat).
    Scored by classes (primary) and the third-party first_letter; rows have a source field (not d6-d9)."""
    rows = [{"id": f"c{i}", "answer": "cat", "source": "web" if i < 5 else "lab"} for i in range(10)]
    rows += [{"id": f"d{i}", "answer": "dog", **({"source": "web"} if i < 6 else {})} for i in range(10)]
    truth = {r["id"]: r["answer"] for r in rows}
    a = truth | {"d0": "cat"}
    b = truth | {f"d{i}": "cat" for i in range(5)}
    task = {
        "id": "pet",
        "prompt": "Cat or dog?",
        "answer": "choice",
        "choices": ["cat", "dog"],
        "scorers": ["classes", "first_letter"],
        "group_by": "source",
    }
    return _rows_run(tmp_path_factory.mktemp("classify"), task, rows, {"a": a, "b": b})


@pytest.fixture(scope="module")
def receipts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A json task of 4 receipts of 2 fields: model a gets 3 of 4 whole, one with 1 of 2 fields (7 of 8 fields)."""
    rows = [{"id": f"r{i}", "answer": {"shop": f"S{i}", "total": i}} for i in range(4)]
    a = {f"r{i}": {"shop": f"S{i}", "total": i} for i in range(4)} | {"r3": {"shop": "S3", "total": 9}}
    a = {k: json.dumps(v) for k, v in a.items()}  # replies as the model writes them
    task = {"id": "receipt", "prompt": "Shop and total?", "answer": "json"}
    return _rows_run(tmp_path_factory.mktemp("receipts"), task, rows, {"a": a})


def _printed(bundle: dict[str, Any], width: int = 80, **kwargs: Any) -> str:
    out = io.StringIO()
    print_report(bundle, Console(file=out, width=width), width=width, **kwargs)
    return out.getvalue()


def test_each_scorers_mean_with_its_interval_primary_first(classify: dict[str, Any]) -> None:
    acc = accuracy_rows(classify)
    assert "primary: classes" in acc.title
    assert acc.head == [
        "cell",
        "images",
        "classes",
        "first_letter",
        "macro-F1",
        "bal. acc",
    ]  # exact match is the classes scorer's mean: not shown twice
    a, b = acc.rows
    assert a[:2] == ["a/sequential", "20"] and a[2].startswith("95% [") and b[2].startswith("75% [")
    assert a[3].startswith("95% [")  # the third-party scorer, from its plugin
    # macro-F1 by hand: a: cat F1 20/21, dog 18/19; b: cat 0.8, dog 2/3
    assert a[4] == f"{(20 / 21 + 18 / 19) / 2:.2f}" == "0.95" and b[4] == f"{(0.8 + 2 / 3) / 2:.2f}" == "0.73"
    assert a[5] == "95%" and b[5] == "75%"  # balanced accuracy: (1 + 0.9) / 2, (1 + 0.5) / 2
    text = _printed(classify)
    assert "Scores, 95% interval over images (primary: classes)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_interval_is_the_bootstrap_over_images(classify: dict[str, Any]) -> None:
    found = bundle_scores(classify)
    values = list(found.cells["a/a/sequential"].values["classes"].values())
    assert sorted(values) == [0.0] + [1.0] * 19
    got = interval(values)
    assert accuracy_rows(classify).rows[0][2] == f"95% [{got.low:.0%}, {got.high:.0%}]"


def test_paired_tests_decide_by_the_primary_scorer(classify: dict[str, Any]) -> None:
    diff = difference_rows(classify)
    assert diff is not None
    assert "a/sequential (classes 95%" in diff.title and diff.head[1] == "classes"
    [row] = diff.rows
    # McNemar exact: 4 images only a got right (d1-d4), none only b: p = 2 / 2**4
    assert row[:4] == ["b/sequential", "75%", "0.12", "no"]
    assert diff.caption.startswith("classes: McNemar exact (its per-image scores);")


def test_group_by_breaks_every_scorer_down_by_a_row_field(classify: dict[str, Any]) -> None:
    rows = group_rows(classify, "source")
    assert rows is not None
    assert rows.head == [
        "source",
        "images",
        "a/sequential classes",
        "a/sequential first_letter",
        "b/sequential classes",
        "b/sequential first_letter",
    ]
    # web: c0-c4 and d0-d5 (11): a misses d0, b misses d0-d4; lab: c5-c9; (none): d6-d9, last
    assert rows.rows == [
        ["web", "11", "91%", "91%", "55%", "55%"],
        ["lab", "5", "100%", "100%", "100%", "100%"],
        ["(none)", "4", "100%", "100%", "100%", "100%"],
    ]
    text = _printed(classify)  # the task's group_by: one more table in the terminal report
    assert "Scores by source" in text
    assert "Scores by kind" in _printed(classify, group_by="kind")  # every item under (none)
    assert group_rows(classify, "kind").rows == [["(none)", "20", "95%", "95%", "75%", "75%"]]


def test_a_json_task_reads_its_true_field_accuracy(receipts: dict[str, Any]) -> None:
    acc = accuracy_rows(receipts)
    # exact match is the whole-object accuracy (over every labelled image): json_fields' own is not repeated
    assert acc.head == ["cell", "images", "json_fields", "exact match"]
    [row] = acc.rows
    assert row[2].startswith("88% [")  # 7 of 8 fields: (1 + 1 + 1 + 0.5) / 4 = 0.875
    assert row[3].startswith("75% [")
    assert bundle_scores(receipts).cells["a/a/sequential"].metrics["json_fields"]["whole_object"] == 0.75
    found = bundle_scores(receipts)
    assert found.cells["a/a/sequential"].why["json_fields"]["r3"] == "wrong: total"


def test_report_html_shows_scores_per_class_and_the_confusion_matrix(classify: dict[str, Any], tmp_path: Path) -> None:
    page = write_html_report(classify, tmp_path / "report.html", draw_charts=False).read_text()
    assert "Scores, 95% interval over images (primary: classes)" in page
    assert "Scores by source" in page
    assert "Per class and confusion matrix" in page
    # cell a's matrix: reference cat -> 10 cat; reference dog -> 1 cat, 9 dog
    assert re.search(r"<td class=\"l\">dog</td><td class=\"wrong\">1</td><td>9</td>", page)
    assert re.search(r"<td class=\"l\">cat</td><td>10</td><td>0</td>", page)
    # the gallery: each answer's primary score and why
    assert 'a: <b>cat</b> &#10007; <span class="score">&middot; 0.00 (cat, not dog)</span>' in page


def test_the_cost_accuracy_chart_plots_the_primary_scorer(
    classify: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.report import charts

    seen = {}

    def keep(fig: Any, path: Path, bundle: Any) -> Path:
        ax = fig.axes[0]
        seen["y"] = ax.get_ylabel()
        seen["points"] = sorted(round(float(p[1]), 3) for c in ax.collections for p in c.get_offsets())
        return path

    monkeypatch.setattr(charts, "_save", keep)
    charts.cost_accuracy_chart(classify, tmp_path / "c.png")
    assert seen["y"].startswith("classes: mean score")
    assert seen["points"] == [75.0, 95.0]


def test_compare_has_a_row_per_scorer_with_its_paired_test(classify: dict[str, Any]) -> None:
    other = copy.deepcopy(classify)
    other["run_id"] = "other"
    for entry in other["cells"]:
        if entry["id"] == "a/a/sequential":
            entry["answers"]["d1"]["value"] = "cat"  # a misses d0 and d1: 90%
    comparison = compare([classify, other])
    row = comparison.row("a/a/sequential", "score:classes")
    assert row.label == "classes (primary)" and row.values == [0.95, 0.9]
    assert comparison.row("a/a/sequential", "score:first_letter").values == [0.95, 0.9]
    assert comparison.row("a/a/sequential", "score:classes:source=web").values == [10 / 11, 9 / 11]
    tests = {d.metric: d for d in comparison.tests["a/a/sequential"][1]}
    assert tests["classes"].test == "McNemar exact" and tests["classes"].p == 1.0  # one discordant image
    out = io.StringIO()
    print_comparison(comparison, Console(file=out, width=80), width=80)
    assert "classes: real?" in out.getvalue() and "first_letter (primary)" not in out.getvalue()


def test_a_bundle_without_scores_still_reports(classify: dict[str, Any], tmp_path: Path) -> None:
    old = copy.deepcopy(classify)
    for entry in old["cells"]:
        del entry["summary"]["scores"]
    acc = accuracy_rows(old)
    assert acc.head == ["cell", "images", "exact match"]
    assert [r[2][:3] for r in acc.rows] == ["95%", "75%"]
    assert "run before scorers" in acc.caption
    assert "exact match" in difference_rows(old).head
    assert "run before scorers" in _printed(old)
    write_html_report(old, tmp_path / "report.html", draw_charts=False)
    assert compare([old, old]).row("a/a/sequential", "exact_match").values == [0.95, 0.95]


def test_a_scorer_that_is_not_installed_is_named_not_a_traceback(
    classify: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugins, "_default", collect(make_manager([fakeplugin])))
    acc = accuracy_rows(classify)
    assert acc.head == ["cell", "images", "exact match"]
    assert "scorer 'first_letter' is not installed" in acc.caption
    text = _printed(classify)
    assert "scorer 'first_letter' is not installed" in " ".join(text.split())


def test_with_repeats_an_images_score_is_its_mean_and_the_test_is_wilcoxon(classify: dict[str, Any]) -> None:
    twice = copy.deepcopy(classify)
    for entry in classify["cells"]:
        again = copy.deepcopy(entry) | {"repeat": 1}
        if entry["id"] == "a/a/sequential":
            again["answers"]["d1"]["value"] = "cat"  # the second repeat of a also misses d1
        twice["cells"].append(again)
    found = bundle_scores(twice)
    a = found.cells["a/a/sequential"]
    assert a.values["classes"]["d1"] == 0.5 and a.mean("classes") == pytest.approx((19 + 18) / 40)
    assert not a.binary["classes"] and found.cells["b/b/sequential"].repeats == 2
    diff = difference_rows(twice)
    assert diff is not None and diff.caption.startswith("classes: Wilcoxon signed-rank on per-image shares (its")
    from visionbench.report.significance import versus_best

    [vs] = versus_best(twice, found)
    [test] = [d for d in vs.differences if d.metric == "classes"]
    assert test.test == "Wilcoxon signed-rank on per-image shares" and test.b == pytest.approx(0.75)


def test_the_command_line_takes_group_by(classify: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench.cli import main

    run_dir = Path(classify["config_path"]).parent / "results" / classify["run_id"]
    assert main(["report", str(run_dir), "--group-by", "kind", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "### Scores by kind" in out and "| (none) | 20 | 95% | 95% | 75% | 75% |" in out
    assert main(["compare", str(run_dir), str(run_dir), "--group-by", "source"]) == 0
    out = capsys.readouterr().out
    assert "classes (primary)" in out and "classes, source web" in out
