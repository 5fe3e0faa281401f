"""visionbench rescore (issue 25, part 4): a run's stored replies re-parsed and re-scored with a changed task, into a
new bundle that names its source, with no request sent; a config that would change what was sent is refused."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import QUIET

from visionbench.errors import ConfigError
from visionbench.results import bundle as bundle_mod

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
#: image -> (what the emulated model replies, the run's label): prices written with a decimal comma
PRICES = {
    "coffee.jpg": ("7,70", 7.7),
    "rocket.jpg": ("12,5", 12.5),
    "chelsea.jpg": ("3", 3),
    "group_2.jpg": ("1.234,5", 1234.0),  # a reply half a unit off its label
}
GEMINI = {"provider": "gemini", "models": ["gemini-3.5-flash"]}
MATRIX = [
    {**GEMINI, "strategies": ["sequential", {"name": "adaptive", "tier1": {"max_side": 128}}]},
    # two items a request, on an endpoint without structured output: the reply is a JSON array of the texts
    {"provider": "plain", "models": ["gpt-6.1-terra"], "strategies": [{"name": "single-prompt", "chunk_size": 2}]},
]
SEQUENTIAL, ADAPTIVE = "gemini/gemini-3.5-flash/sequential", "gemini/gemini-3.5-flash/adaptive"
SINGLE = "plain/gpt-6.1-terra/single-prompt"


def write_config(folder: Path, task: dict[str, Any]) -> Path:
    """A run of PRICES: the emulator replies each image's text (its own labels file), the run scores numbers."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in PRICES:
        shutil.copy(SAMPLES / name, data / name)
    (data / "labels.json").write_text(json.dumps({k: label for k, (_, label) in PRICES.items()}))
    (data / "replies.json").write_text(json.dumps({k: reply for k, (reply, _) in PRICES.items()}))
    profiles = folder / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    spec = {
        "name": "prices",
        "dataset": {"path": "data", "labels": "labels.json"},
        "task": task,
        "preprocessing": {"max_side": 384},
        "emulator": {"profiles": str(profiles), "dataset": str(data), "labels": "replies.json"},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "cache_dir": str(folder / "c"),
        "providers": {"plain": {"plugin": "openai", "structured_output": "prompt"}},
        "matrix": MATRIX,
    }
    path = folder / "prices.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


TASK = {"id": "price", "answer": "number", "prompt": "What does it cost? Reply with the price only."}


def changed(config: Path, name: str, edit: Any) -> Path:
    """A copy of ``config`` beside it, as ``edit`` changes its dict."""
    spec = yaml.safe_load(config.read_text())
    edit(spec)
    path = config.with_name(name)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the config, the run's folder): PRICES run against the emulator, every reply with a comma unparseable."""
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    folder = tmp_path_factory.mktemp("source")
    config = write_config(folder, TASK)
    out = asyncio.run(run(load_plan(config, default_registry()), results_dir=folder / "r", cache_dir=folder / "c"))
    return config, out.parent


def crafted(run_dir: Path, folder: Path) -> Path:
    """The run with two records changed by hand: sequential's request about rocket.jpg failed (no reply), and
    adaptive's tier 2 read coffee.jpg as 8,10 (its tier 1: 7,70)."""
    data = bundle_mod.load(run_dir)
    records = []
    for r in data["records"]:
        r = dict(r)
        if r["cell"] == SEQUENTIAL and r["item_ids"] == ["rocket.jpg"]:
            r.update(
                raw_text=None, usage=None, cost_usd=None, error={"kind": "server", "message": "HTTP 500", "status": 500}
            )
            r["answers"] = [{"item_id": "rocket.jpg", "value": None, "error": "server: HTTP 500"}]
        if r["cell"] == ADAPTIVE and r["tier"] == 2 and r["item_ids"] == ["coffee.jpg"]:
            r["raw_text"] = "8,10"
        records.append(r)
    path = folder / data["run_id"] / "bundle.json"
    path.parent.mkdir(parents=True)
    bundle_mod.write(path, {**data.to_json(), "records": records})
    return path.parent


def no_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any emulator started or connection opened fails the test."""
    from visionbench.emulator import Emulator

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rescore started an emulator or opened a connection")

    monkeypatch.setattr(Emulator, "__aenter__", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def summary(data: Any, cell: str) -> dict[str, Any]:
    [entry] = [c for c in data["cells"] if c["id"] == cell]
    return entry["summary"]


def test_the_source_run_could_not_read_decimal_commas(source: tuple[Path, Path]) -> None:
    data = bundle_mod.load(source[1])
    for cell in (SEQUENTIAL, ADAPTIVE, SINGLE):  # only chelsea.jpg's "3" was read
        figures = summary(data, cell)
        assert figures["errors"] == 3 and figures["exact_match"] == 0.25, cell
        assert figures["scores"]["numeric"]["mean"] == 0.25, cell


def test_rescore_reads_the_replies_again_with_a_changed_task_and_sends_nothing(
    source: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    config, run_dir = source
    run_dir = crafted(run_dir, tmp_path / "crafted")
    before = bundle_mod.load(run_dir)
    comma = changed(
        config,
        "comma.yaml",
        lambda s: s["task"].update(
            decimal=",", scorers=[{"name": "numeric", "abs_tol": 0.5}, {"name": "numeric", "as": "exact_number"}]
        ),
    )
    no_requests(monkeypatch)
    out = rescore(run_dir, default_registry(), config=comma, results_dir=tmp_path / "new")
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    assert out.parent.parent == tmp_path / "new" and data["run_id"] != before["run_id"]
    assert data["rescored_from"]["run_id"] == before["run_id"]
    assert data["rescored_from"]["path"] == str((run_dir / "bundle.json").resolve())
    assert data["config"]["task"]["decimal"] == "," and data["config_path"] == str(comma.resolve())
    assert data["status"] == "incomplete"  # the failed request stays failed

    # sequential: 3, 7.7 and 1234.5 (label 1234.0) read; rocket.jpg's request failed and stays failed
    seq = summary(data, SEQUENTIAL)
    assert seq["errors"] == 1 and seq["answered"] == 3 and seq["exact_match"] == 0.5
    assert seq["mae"] == pytest.approx(0.5 / 3)
    assert seq["scores"]["numeric"]["mean"] == 0.75  # within 0.5: all three answered
    assert seq["scores"]["exact_number"]["mean"] == 0.5
    assert list(seq["scores"]) == ["numeric", "exact_number"]
    answers = next(c for c in data["cells"] if c["id"] == SEQUENTIAL)["answers"]
    assert answers["coffee.jpg"]["value"] == 7.7 and answers["group_2.jpg"]["value"] == 1234.5
    assert answers["rocket.jpg"]["error"] == "server: HTTP 500"
    # adaptive: tier 2's answer counts where it gave one: 8.1 for coffee.jpg (tier 1 read 7.7)
    adaptive = summary(data, ADAPTIVE)
    final = next(c for c in data["cells"] if c["id"] == ADAPTIVE)["answers"]
    assert final["coffee.jpg"]["value"] == 8.1 and final["rocket.jpg"]["value"] == 12.5
    assert adaptive["errors"] == 0 and adaptive["exact_match"] == 0.5
    assert adaptive["mae"] == pytest.approx((0.4 + 0.5) / 4)
    assert adaptive["scores"]["numeric"]["mean"] == 1.0 and adaptive["scores"]["exact_number"]["mean"] == 0.5
    # two items a request: each item's answer read again from the array
    single = summary(data, SINGLE)
    assert single["errors"] == 0 and single["exact_match"] == 0.75 and single["mae"] == pytest.approx(0.5 / 4)

    # the records are the run's, their answers read again; times, tokens and costs are the run's
    assert len(data["records"]) == len(before["records"])
    for new, old in zip(data["records"], before["records"]):
        assert {k: v for k, v in new.items() if k != "answers"} == {k: v for k, v in old.items() if k != "answers"}
    record = next(r for r in data["records"] if r["cell"] == SINGLE and "rocket.jpg" in r["item_ids"])
    assert [a["value"] for a in record["answers"]] == [1234.5, 12.5]
    for cell in (SEQUENTIAL, ADAPTIVE, SINGLE):
        new, old = summary(data, cell), summary(before, cell)
        kept = ("requests", "attempts", "wall_s", "latency_p50_s", "input_tokens", "output_tokens", "cost_usd")
        assert {k: new[k] for k in kept} == {k: old[k] for k in kept}, cell
    assert bundle_mod.load(run_dir)["cells"] == before["cells"]  # the source is left as it was


def test_rescore_with_the_runs_own_config_gives_its_own_figures(
    source: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    no_requests(monkeypatch)
    out = rescore(source[1], default_registry(), results_dir=tmp_path)
    data, before = bundle_mod.load(out), bundle_mod.load(source[1])
    assert data["config"] == before["config"] and data["config_path"] == before["config_path"]
    assert data["cells"] == before["cells"] and data["records"] == before["records"]
    assert data["status"] == before["status"] == "incomplete"


def test_rescore_writes_beside_its_source_by_default(
    source: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    no_requests(monkeypatch)
    out = rescore(source[1] / "bundle.json", default_registry(), run_id="again")
    try:
        assert out == source[1].parent / "again" / "bundle.json"
    finally:
        shutil.rmtree(out.parent)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s["task"].update(prompt="How much?"), "task.prompt"),
        (lambda s: s["matrix"][0].update(models=["gemini-3.5-pro"]), "matrix[0].models[0]"),
        (lambda s: s["preprocessing"].update(max_side=768), "preprocessing.max_side"),
        (lambda s: s["dataset"].update(labels="replies.json"), "dataset.labels"),
        (lambda s: s.update(pricing=[{"match": "x", "input": 1, "output": 2, "source": "t"}]), "pricing"),
        (lambda s: s["matrix"].pop(), "matrix"),
    ],
)
def test_a_config_that_changes_what_was_sent_is_refused(
    source: tuple[Path, Path], tmp_path: Path, edit: Any, named: str
) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    config = changed(source[0], "other.yaml", edit)
    with pytest.raises(ConfigError, match="rescore cannot change") as err:
        rescore(source[1], default_registry(), config=config, results_dir=tmp_path)
    changes = str(err.value).split("rescore cannot change ")[1].split(":")[0]
    assert changes.split(", ") == [named]
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_answer_type_a_request_of_several_items_stated_cannot_change(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    config = changed(source[0], "integer.yaml", lambda s: s["task"].update(answer="integer"))
    with pytest.raises(ConfigError, match=f"cell {SINGLE}'s requests asked about 2 items at once"):
        rescore(source[1], default_registry(), config=config, results_dir=tmp_path)


def without_single_prompt(run_dir: Path, folder: Path) -> Path:
    """The run as if its matrix had only the gemini cells (requests of one item each)."""
    data = bundle_mod.load(run_dir)
    config = {**data["config"], "matrix": data["config"]["matrix"][:1]}
    path = folder / "bundle.json"
    path.parent.mkdir(parents=True)
    bundle_mod.write(
        path,
        {
            **data.to_json(),
            "config": config,
            "cells": [c for c in data["cells"] if c["id"] != SINGLE],
            "records": [r for r in data["records"] if r["cell"] != SINGLE],
        },
    )
    return folder


def test_a_schema_sent_for_structured_output_cannot_change(source: tuple[Path, Path], tmp_path: Path) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    run_dir = without_single_prompt(source[1], tmp_path / "gemini")
    config = changed(
        source[0],
        "json.yaml",
        lambda s: (s["task"].update(answer="json", schema={"type": "number"}), s.update(matrix=s["matrix"][:1])),
    )
    with pytest.raises(ConfigError, match=f"cell {SEQUENTIAL}'s requests sent the answer's schema to gemini"):
        rescore(run_dir, default_registry(), config=config, results_dir=tmp_path / "new")


def test_labels_the_changed_task_cannot_take_are_refused(source: tuple[Path, Path], tmp_path: Path) -> None:
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    run_dir = without_single_prompt(source[1], tmp_path / "gemini")
    config = changed(
        source[0], "text.yaml", lambda s: (s["task"].update(answer="text"), s.update(matrix=s["matrix"][:1]))
    )
    with pytest.raises(
        ConfigError, match=r"item 'chelsea.jpg': its label is 3 \(int\); the task's answer type is text"
    ):
        rescore(run_dir, default_registry(), config=config, results_dir=tmp_path / "new")


# -- the command ---------------------------------------------------------------------------------------------------
def test_the_command_prints_the_report_and_writes_the_page(
    source: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from visionbench.cli import main

    comma = changed(source[0], "comma.yaml", lambda s: s["task"].update(decimal=","))
    no_requests(monkeypatch)
    code = main(["rescore", str(source[1]), "--config", str(comma), "--results", str(tmp_path), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [folder] = tmp_path.iterdir()
    assert (folder / "report.html").is_file()
    doc = json.loads(out)
    assert doc["run_id"] == folder.name and doc["status"] == "complete" and doc["failures"] == []
    assert f"rescored run {source[1].name}: no request sent" in err


def test_the_command_exits_2_on_a_bad_run_or_a_changed_prompt(
    source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visionbench.cli import main

    assert main(["rescore", str(tmp_path / "nowhere")]) == 2
    assert "no such file (a run bundle was expected)" in capsys.readouterr().err
    prompt = changed(source[0], "prompt.yaml", lambda s: s["task"].update(prompt="How much?"))
    assert main(["rescore", str(source[1]), "--config", str(prompt), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "rescore cannot change task.prompt:" in err and "cannot ask again" in err
    assert not list(tmp_path.iterdir())


def test_a_kept_label_is_taken_as_the_changed_task_takes_it() -> None:
    from visionbench.data.dataset import task_label
    from visionbench.types import Task

    scene = Task("t", "Where?", "choice", choices=("Indoor", "Street"))
    assert task_label("indoor", scene) == "Indoor" and task_label(["STREET", "indoor"], scene) == ["Street", "Indoor"]
    with pytest.raises(ValueError, match="'crowd', which is not one of the task's choices"):
        task_label("crowd", scene)
    assert task_label(7.7, Task("t", "Price?", "number")) == 7.7
    with pytest.raises(ValueError, match=r"is 7.7 \(float\); the task's answer type is integer"):
        task_label(7.7, Task("t", "Price?", "integer"))
