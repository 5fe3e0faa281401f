"""Scorers as plugins (issue 25): the hook, the config's ``task.scorers``, the built-in defaults checked against
hand-computed figures, and a cell's scores in its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from visionbench import hookimpl
from visionbench.errors import ConfigError
from visionbench.results.scores import TaskScorers
from visionbench.run.config import load_experiment, task_scorers
from visionbench.run.plugins import default_registry
from visionbench.scorer import Score, Scored, Scorer
from visionbench.types import Answer, Task

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"


def scorers(task: Task, written: list[Any] | None = None) -> TaskScorers:
    return task_scorers(Path("c.yaml"), default_registry(), task, written)


def rows(labels: dict[str, Any]) -> list[tuple[str, Any, None]]:
    return [(i, label, None) for i, label in labels.items()]


def answers(values: dict[str, Any]) -> dict[str, Answer]:
    return {i: Answer(i, value=v) if v is not None else Answer(i, error="boom") for i, v in values.items()}


def test_the_built_ins_register_through_the_hook() -> None:
    assert {"exact", "numeric", "relaxed", "classes", "json_fields"} <= set(default_registry().scorers)
    assert default_registry().origins["scorer:exact"].startswith("visionbench")


@pytest.mark.parametrize(
    ("answer_type", "primary"),
    [("integer", "numeric"), ("number", "numeric"), ("boolean", "classes"), ("text", "exact"), ("json", "json_fields")],
)
def test_each_answer_type_has_a_default_scorer(answer_type: str, primary: str) -> None:
    assert scorers(Task("t", "p", answer_type)).primary == primary  # type: ignore[arg-type]


def test_config_errors_name_the_entry() -> None:
    task = Task("t", "p", "text")
    with pytest.raises(ConfigError, match=r"task.scorers\[1\]: unknown scorer 'anl'; loaded scorers: .*exact"):
        scorers(task, ["exact", "anl"])
    with pytest.raises(ConfigError, match=r"task.scorers\[0\]: scorer 'numeric' cannot score this task"):
        scorers(task, ["numeric"])
    with pytest.raises(ConfigError, match=r"task.scorers\[1\]: scorer 'exact' is named twice"):
        scorers(task, ["exact", "exact"])
    with pytest.raises(ConfigError, match=r"task.scorers\[0\].*abs_tl"):
        scorers(Task("t", "p", "integer"), [{"name": "numeric", "abs_tl": 1}])
    with pytest.raises(ConfigError, match="empty"):
        scorers(task, [])
    both = scorers(Task("t", "p", "integer"), ["numeric", {"name": "numeric", "as": "within_1", "abs_tol": 1}])
    assert [key for key, _ in both.scorers] == ["numeric", "within_1"] and both.primary == "numeric"


def test_numeric_tolerance_and_errors_by_hand() -> None:
    task = Task("t", "p", "integer")
    s = scorers(task, ["numeric", {"name": "numeric", "as": "near", "abs_tol": 1}, "relaxed"])
    labels = {"a": 10, "b": 20, "c": [3, 5], "d": 0, "e": 7}
    got = s.score_cell(rows(labels), answers({"a": 10, "b": 21, "c": 6, "d": 2, "e": None}))
    # exact: a only (c's nearest reference is 5, off by 1); e failed and scores 0: 1/5
    assert got["numeric"]["mean"] == pytest.approx(1 / 5) and got["numeric"]["n"] == 5
    # within 1: a, b, c: 3/5; relaxed (5%): a, and b (1 of 20 is 5%): 2/5
    assert got["near"]["mean"] == pytest.approx(3 / 5) and got["relaxed"]["mean"] == pytest.approx(2 / 5)
    # errors over the answered: 0, 1, 1, 2 -> MAE 1, RMSE sqrt(6/4); relative: 0, 1/20, 1/5 (d's reference is 0)
    metrics = got["numeric"]["metrics"]
    assert metrics["mae"] == 1.0 and metrics["rmse"] == pytest.approx((6 / 4) ** 0.5)
    assert metrics["mean_relative_error"] == pytest.approx((0 + 0.05 + 0.2) / 3)


def test_classes_by_hand_confusion_f1_and_balanced_accuracy() -> None:
    task = Task("t", "p", "choice", choices=("cat", "dog", "bird"))
    labels = {"1": "cat", "2": "cat", "3": "cat", "4": "dog", "5": "dog", "6": "bird", "7": "bird"}
    replies = {"1": "cat", "2": "cat", "3": "dog", "4": "dog", "5": "cat", "6": "bird", "7": None}
    got = scorers(task).score_cell(rows(labels), answers(replies))["classes"]
    assert got["mean"] == pytest.approx(4 / 7)  # 7 failed: scores 0 in the mean
    m = got["metrics"]  # over the 6 answered: rows are the references, columns the answers
    assert m["confusion"] == {"classes": ["cat", "dog", "bird"], "matrix": [[2, 1, 0], [1, 1, 0], [0, 0, 1]]}
    # cat: P 2/3, R 2/3, F1 2/3; dog: P 1/2, R 1/2, F1 1/2; bird: P 1, R 1, F1 1
    assert m["per_class"]["cat"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_classes_of_a_yes_no_task_never_answering_yes() -> None:
    task = Task("t", "p", "boolean")
    labels = {str(i): i < 2 for i in range(10)}  # 2 yes, 8 no
    got = scorers(task).score_cell(rows(labels), answers(dict.fromkeys(labels, False)))["classes"]
    m = got["metrics"]
    assert got["mean"] == 0.8 and m["per_class"]["yes"] == {"precision": None, "recall": 0.0, "f1": None, "support": 2}
    assert m["balanced_accuracy"] == 0.5  # what "always no" is worth, where accuracy says 80%
    assert m["macro_f1"] == pytest.approx((0 + 2 * 0.8 / 1.8) / 2)


def test_json_fields_by_hand() -> None:
    task = Task("t", "p", "json")
    labels = {"a": {"shop": "X", "total": 4.5}, "b": {"shop": "Y", "total": 2}}
    replies = {"a": {"total": 4.5, "shop": "X"}, "b": {"shop": "Z", "tip": 1}}
    s = scorers(task)
    got = s.score_cell(rows(labels), answers(replies))["json_fields"]
    assert got["mean"] == pytest.approx((1 + 0) / 2)
    m = got["metrics"]
    assert m == {
        "whole_object": 0.5,
        "per_field": {"shop": 0.5, "total": 0.5},
        "missing_fields": 1,
        "invented_fields": 1,
    }
    why = s.item_scores(rows(labels), answers(replies))["json_fields"]["b"]
    assert why == Score(0.0, "wrong: shop; missing: total")


def test_a_scorer_out_of_range_is_refused_with_its_name() -> None:
    from visionbench.scorer import Scorer

    class Broken(Scorer):
        name = "broken"

        def score(self, item: Scored) -> Score:
            return Score(1.5)

    s = TaskScorers(Task("t", "p", "text"), (("broken", Broken()),))
    with pytest.raises(ValueError, match=r"scorer 'broken' gave item 'a' .*\[0, 1\]"):
        s.score_cell(rows({"a": "x"}), answers({"a": "x"}))


def test_a_run_writes_each_scorer_into_the_cell_summary(tmp_path: Path) -> None:
    import asyncio

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.runner import run

    config = {
        "name": "s",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "scorers": ["numeric", {"name": "relaxed"}]},
        "matrix": [{"provider": "local-faces", "models": ["centerface"], "strategies": ["sequential"]}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load_experiment(path, default_registry()).scorers is not None
    out = asyncio.run(run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    scores = data["cells"][0]["summary"]["scores"]
    assert list(scores) == ["numeric", "relaxed"] and scores["numeric"]["n"] == 10
    summary = data["cells"][0]["summary"]
    assert scores["numeric"]["mean"] == pytest.approx(summary["exact_match"])  # the same rule, two ways
    assert scores["numeric"]["metrics"]["mae"] == pytest.approx(summary["mae"])


def test_json_fields_reads_numbers_within_a_tolerance() -> None:
    task = Task("t", "p", "json")
    labels = {"a": {"shop": "X", "total": 45.95, "items": 3}}
    replies = {"a": {"shop": "X", "total": 46.0, "items": 3.0}}
    exact = scorers(task).score_cell(rows(labels), answers(replies))["json_fields"]
    assert exact["mean"] == pytest.approx(2 / 3)  # 46.0 is not 45.95; 3.0 is 3
    near = scorers(task, [{"name": "json_fields", "abs_tol": 0.1}]).score_cell(rows(labels), answers(replies))
    assert near["json_fields"]["mean"] == 1.0 and near["json_fields"]["metrics"]["per_field"]["total"] == 1.0
    rel = scorers(task, [{"name": "json_fields", "rel_tol": 0.001}]).score_cell(rows(labels), answers(replies))
    assert rel["json_fields"]["mean"] == pytest.approx(2 / 3)  # off by 0.05, more than 0.1% of 45.95 (0.046)
    rel = scorers(task, [{"name": "json_fields", "rel_tol": 0.002}]).score_cell(rows(labels), answers(replies))
    assert rel["json_fields"]["mean"] == 1.0  # within 0.2% (0.092)


class BareNumber(Scorer):
    """A scorer that reads the raw reply: right when the model answered with the number alone."""

    name = "bare_number"
    needs_reply = True

    def score(self, item: Scored) -> Score:
        return Score(1.0 if (item.reply or "").strip().isdigit() else 0.0, f"reply {item.reply!r}")


class BareNumberPlugin:
    """Registers ``BareNumber`` as a third-party plugin would."""

    @staticmethod
    @hookimpl
    def register_scorers(register):
        register(BareNumber)


def test_a_scorer_that_reads_the_raw_reply_gets_it_in_the_run_the_report_and_rescore(tmp_path: Path) -> None:
    """local-faces replies "3" to one image and "[1, 0, 2, 1]" to a request of four: the reply is the raw text
    behind each final answer, in the run's summary, in the report's per-image scores and in rescore alike."""
    import asyncio

    from visionbench.report.scores import bundle_scores
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import collect, make_manager
    from visionbench.run.rescore import rescore
    from visionbench.run.runner import run

    registry = collect(make_manager([BareNumberPlugin]))
    config = {
        "name": "replies",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "scorers": ["numeric", "bare_number"]},
        "matrix": [
            {
                "provider": "local-faces",
                "models": ["centerface"],
                "strategies": ["sequential", {"name": "single-prompt", "chunk_size": 4}],
            }
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = asyncio.run(run(load_plan(path, registry), results_dir=tmp_path / "r", cache_dir=None))
    data = bundle_mod.load(out)
    by_cell = {c["id"].rsplit("/", 1)[1]: c["summary"]["scores"]["bare_number"] for c in data["cells"]}
    assert by_cell["sequential"]["mean"] == 1.0  # "1", "0", "3": each the number alone
    assert by_cell["single-prompt"]["mean"] == 0.0  # each answer came out of a JSON array
    found = bundle_scores(data, registry)
    single = next(c for c in found.cells if c.endswith("single-prompt"))
    assert set(found.cells[single].values["bare_number"].values()) == {0.0}
    assert all(why.startswith("reply '[") for why in found.cells[single].why["bare_number"].values())
    again = bundle_mod.load(rescore(out.parent, registry, results_dir=tmp_path / "again"))
    assert [c["summary"]["scores"]["bare_number"] for c in again["cells"]] == [
        c["summary"]["scores"]["bare_number"] for c in data["cells"]
    ]
