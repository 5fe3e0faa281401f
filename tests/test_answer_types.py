"""Issue 24: answer types beyond counts, end to end through `visionbench run` and `report` on the scripted
provider: multi-line text answers in the tables, choices and JSON objects scored by their type."""

from __future__ import annotations

import json

import yaml
from conftest import write_config

import visionbench.cli as cli
from visionbench.results import bundle as bundle_mod
from visionbench.results.scoring import accuracy, field_score, matches
from visionbench.types import Answer, ImageItem


def _run(tmp_path, image_dir, monkeypatch, registry, task: dict, labels: dict, answers: dict, *args: str):
    (image_dir / "task_labels.json").write_text(json.dumps(labels))
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers})
    config = yaml.safe_load(path.read_text())
    config["task"] = {"id": "any", "prompt": "?", **task}
    config["dataset"] = {"path": str(image_dir), "labels": "task_labels.json"}
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(cli, "default_registry", lambda: registry)
    code = cli.main(["run", str(path), "--results", str(tmp_path / "r"), "--no-cache", *args])
    [run_dir] = list((tmp_path / "r").iterdir())
    return code, run_dir


def test_a_multi_line_text_answer_that_differs_from_its_label_is_shown_not_a_crash(
    tmp_path, image_dir, monkeypatch, registry, capsys
):
    labels = {"img0.png": "STOP\nMain St", "img1.png": "EXIT", "img2.png": "one way"}
    answers = {"img0.png": "STOP\nMain Street", "img1.png": "exit", "img2.png": "ONE  WAY\n"}
    code, run_dir = _run(tmp_path, image_dir, monkeypatch, registry, {"answer": "text"}, labels, answers)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Main Street" in out and "Main St" in out  # both lines of the answer and of the label are shown
    data = bundle_mod.load(run_dir)
    [cell] = data["cells"]
    # text is compared case- and whitespace-insensitively: "exit" = "EXIT", "ONE  WAY" = "one way"
    assert cell["summary"]["labelled"] == 3 and cell["summary"]["exact_match"] == 2 / 3
    for fmt in ("table", "markdown"):
        assert cli.main(["report", str(run_dir), "--format", fmt]) == 0
        assert "Main Street" in capsys.readouterr().out
    html = (run_dir / "report.html").read_text()
    assert "Main Street" in html
    # only img0's answer is marked wrong, in the answers table and the gallery: "exit" is "EXIT" for a text task
    assert html.count('<td class="wrong">') == 1 and html.count('<li class="wrong">') == 1


def test_a_run_of_a_choice_task_scores_choices(tmp_path, image_dir, monkeypatch, registry, capsys):
    task = {"answer": "choice", "choices": ["street", "indoor", "crowd", "animal", "object"]}
    labels = {"img0.png": "street", "img1.png": "indoor", "img2.png": "crowd", "img3.png": "animal"}
    answers = {
        "img0.png": "The image shows a street scene.",
        "img1.png": "Indoor",
        "img2.png": '"crowd"',
        "img3.png": "A street with an animal.",
    }
    code, run_dir = _run(tmp_path, image_dir, monkeypatch, registry, task, labels, answers)
    err = capsys.readouterr().err
    assert code == 4  # img3's reply names two choices: an item error; img4 and img5 reply "0", no choice
    [cell] = bundle_mod.load(run_dir)["cells"]
    assert cell["answers"]["img0.png"]["value"] == "street" and cell["answers"]["img1.png"]["value"] == "indoor"
    assert "names 2 choices" in cell["answers"]["img3.png"]["error"]
    assert "A street with an animal." in cell["answers"]["img3.png"]["error"]
    assert cell["summary"]["exact_match"] == 3 / 4, err


def test_a_run_of_a_json_task_scores_fields_and_whole_objects(tmp_path, image_dir, monkeypatch, registry, capsys):
    schema = {"type": "object", "properties": {"count": {"type": "integer"}, "kind": {"type": "string"}}}
    task = {"answer": "json", "schema": schema}
    labels = {"img0.png": {"count": 2, "kind": "cat"}, "img1.png": {"count": 1, "kind": "dog"}}
    answers = {
        "img0.png": 'Here it is:\n```json\n{"kind": "cat", "count": 2}\n```',
        "img1.png": '{"count": 3, "kind": "dog"}',
        "img2.png": "{}",
        "img3.png": "{}",
        "img4.png": "{}",
        "img5.png": "{}",
    }
    code, run_dir = _run(tmp_path, image_dir, monkeypatch, registry, task, labels, answers)
    out = capsys.readouterr().out
    assert code == 0, out
    [cell] = bundle_mod.load(run_dir)["cells"]
    assert cell["answers"]["img0.png"]["value"] == {"count": 2, "kind": "cat"}
    summary = cell["summary"]
    assert summary["exact_match"] == 0.5 and summary["field_match"] == 0.75 and summary["mae"] is None
    assert 'kind: "cat"' in out  # a JSON object in the answers table: one field a line


def test_matches_by_answer_type():
    assert matches("Main  street ", "main street", "text") and not matches("Main St", "Main Street", "text")
    assert matches("Indoor", "indoor.", "choice")
    assert matches({"b": [1, 2.0], "a": "x"}, {"a": "x", "b": [1, 2]}, "json")
    assert not matches({"a": True}, {"a": 1}, "json") and not matches({"a": "X"}, {"a": "x"}, "json")
    assert matches(3, 3.0, "integer") and not matches("EXIT", "exit", None)  # an old bundle: plain equality


def test_field_score_is_the_share_of_the_labels_fields_right():
    label = {"count": 2, "kind": "cat", "colour": "black"}
    assert field_score({"kind": "cat", "count": 2, "colour": "white", "extra": 1}, label) == 2 / 3
    assert field_score("cat", label) == 0.0 and field_score([1], [1]) == 1.0


def test_json_accuracy_counts_unanswered_items_as_zero_fields():
    items = [ImageItem("a", None, "", {"x": 1, "y": 2}), ImageItem("b", None, "", {"x": 1})]  # type: ignore[arg-type]
    final = {"a": Answer("a", {"x": 1, "y": 3}), "b": Answer("b", error="unparseable reply")}
    got = accuracy(items, final, "json")
    assert got["exact_match"] == 0.0 and got["field_match"] == 0.25 and got["answered"] == 1


def test_json_cells_send_the_tasks_schema_as_structured_output(tmp_path, image_dir, monkeypatch, registry):
    import fakeplugin

    sent = []
    original = fakeplugin.Scripted.generate

    async def generate(self, request):
        sent.append(request)
        return await original(self, request)

    monkeypatch.setattr(fakeplugin.Scripted, "generate", generate)
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    answers = {f"img{i}.png": json.dumps({"count": i}) for i in range(6)}
    labels = {"img0.png": {"count": 0}}
    code, _ = _run(tmp_path, image_dir, monkeypatch, registry, {"answer": "json", "schema": schema}, labels, answers)
    assert code == 0
    assert sent and all(r.response_schema == schema and r.prompt == "?" for r in sent)
