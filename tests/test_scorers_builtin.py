"""The built-in scorers beyond the defaults (text similarity, includes, regex, VQA, boxes), each checked against
figures worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from visionbench.errors import ConfigError
from visionbench.results.scores import TaskScorers
from visionbench.run.config import task_scorers
from visionbench.run.plugins import default_registry
from visionbench.scorer import Score
from visionbench.scorers.vqa import normalise
from visionbench.types import Answer, Task


def scorers(task: Task, written: list[Any]) -> TaskScorers:
    return task_scorers(Path("c.yaml"), default_registry(), task, written)


def rows(labels: dict[str, Any]) -> list[tuple[str, Any, None]]:
    return [(i, label, None) for i, label in labels.items()]


def answers(values: dict[str, Any]) -> dict[str, Answer]:
    return {i: Answer(i, value=v) if v is not None else Answer(i, error="boom") for i, v in values.items()}


def cell(task: Task, written: list[Any], labels: dict[str, Any], replies: dict[str, Any]) -> dict[str, Any]:
    return scorers(task, written).score_cell(rows(labels), answers(replies))


def whys(task: Task, written: list[Any], labels: dict[str, Any], replies: dict[str, Any]) -> dict[str, Score]:
    [(_, scores)] = scorers(task, written).item_scores(rows(labels), answers(replies)).items()
    return scores


TEXT = Task("t", "p", "text")


def test_they_register_through_the_hook() -> None:
    names = {"anls", "cer", "wer", "includes", "regex", "vqa_accuracy", "iou"}
    assert names <= set(default_registry().scorers)
    assert all(default_registry().origins[f"scorer:{n}"].startswith("visionbench") for n in names)


def test_anls_by_hand() -> None:
    labels = {"a": "Hello World", "b": "kitten", "c": ["abcd", "xyz"], "d": "abcd", "e": "ab"}
    replies = {"a": "hello   world", "b": "sitting", "c": "abXd", "d": "wxyz", "e": "ax"}
    got = cell(TEXT, ["anls", {"name": "anls", "as": "loose", "threshold": 0.6}], labels, replies)
    # a: same once case and spaces are normalised; b: 3 edits over 7 characters; c: 1 of 4 off the nearest;
    # d: all 4 wrong; e: distance 1/2, not under the threshold 0.5 (DocVQA's rule: under it, or 0)
    assert got["anls"]["mean"] == pytest.approx((1 + 4 / 7 + 0.75 + 0 + 0) / 5)
    assert got["loose"]["mean"] == pytest.approx((1 + 4 / 7 + 0.75 + 0 + 0.5) / 5)
    why = whys(TEXT, ["anls"], labels, replies)
    assert why["a"] == Score(1.0) and why["b"] == Score(pytest.approx(4 / 7), "similarity 0.57")
    assert why["e"] == Score(0.0, "similarity 0.50, needs over 0.5")


def test_anls_scores_choices_and_refuses_numbers() -> None:
    task = Task("t", "p", "choice", choices=("street", "indoor"))
    assert cell(task, ["anls"], {"a": "street"}, {"a": "street"})["anls"]["mean"] == 1.0
    with pytest.raises(ConfigError, match=r"task.scorers\[0\]: scorer 'anls' cannot score this task"):
        scorers(Task("t", "p", "integer"), ["anls"])
    with pytest.raises(ConfigError, match=r"task.scorers\[0\]\.threshold"):
        scorers(TEXT, [{"name": "anls", "threshold": 0}])


def test_cer_by_hand() -> None:
    labels = {"a": "kitten", "b": "abc", "c": "ab", "d": "x"}
    replies = {"a": "sitting", "b": "ABC", "c": "abcdef", "d": None}
    got = cell(TEXT, ["cer", {"name": "cer", "as": "cased", "case_sensitive": True}], labels, replies)
    # a: 3 edits / 6; b: none (case ignored); c: 4 insertions / 2 = CER 2, scores 0; d failed: 0 in the mean
    assert got["cer"]["mean"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    m = got["cer"]["metrics"]  # over the 3 answered
    assert m["cer"] == pytest.approx((0.5 + 0 + 2) / 3) and m["corpus_cer"] == pytest.approx((3 + 0 + 4) / (6 + 3 + 2))
    # case sensitive, b's three letters are all wrong: CER 1
    assert got["cased"]["metrics"]["corpus_cer"] == pytest.approx((3 + 3 + 4) / 11)
    assert whys(TEXT, ["cer"], labels, replies)["a"] == Score(0.5, "CER 0.50")


def test_wer_by_hand_against_the_nearest_reference() -> None:
    labels = {"a": "the cat sat on the mat", "b": ["goodbye", "hello world"]}
    replies = {"a": "The cat sit on mat", "b": "hello\n  world"}
    got = cell(TEXT, ["wer"], labels, replies)["wer"]
    # a: sat -> sit and a "the" missing: 2 of 6 words; b: the second reference, exactly
    assert got["mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["metrics"] == {"wer": pytest.approx((1 / 3 + 0) / 2), "corpus_wer": pytest.approx(2 / 8)}


def test_an_empty_reference_has_error_rate_zero_only_for_an_empty_answer() -> None:
    got = cell(TEXT, ["cer"], {"a": "", "b": ""}, {"a": "", "b": "x"})["cer"]
    assert got["mean"] == 0.5 and got["metrics"] == {"cer": 0.5, "corpus_cer": None}


def test_includes_by_hand() -> None:
    labels = {"a": "Paris", "b": "New York", "c": ["cat", "dog"], "d": "Rome", "e": ["x", "y"]}
    replies = {"a": "The capital is paris.", "b": "new\n york city", "c": "A dog.", "d": "Roma", "e": "z"}
    got = cell(TEXT, ["includes", {"name": "includes", "as": "cased", "case_sensitive": True}], labels, replies)
    assert got["includes"]["mean"] == pytest.approx(3 / 5)
    # case sensitive: paris is not Paris, new york is not New York
    assert got["cased"]["mean"] == pytest.approx(1 / 5)
    why = whys(TEXT, ["includes"], labels, replies)
    assert why["d"] == Score(0.0, "'Rome' not in the answer")
    assert why["e"] == Score(0.0, "none of the 2 references in the answer")


def test_regex_with_and_without_the_reference() -> None:
    date = r"\d{4}-\d{2}-\d{2}"
    labels = {"a": "ignored", "b": "ignored"}
    replies = {"a": "Issued on 2024-01-31.", "b": "31/01/2024"}
    got = cell(
        TEXT,
        [{"name": "regex", "pattern": date}, {"name": "regex", "as": "whole", "pattern": date, "fullmatch": True}],
        labels,
        replies,
    )
    assert got["regex"]["mean"] == 0.5 and got["whole"]["mean"] == 0.0
    # {reference} is each reference, matched literally: the "." of 3.5 is not any character
    written = [{"name": "regex", "pattern": r"^\s*{reference}\s*\.?$", "ignore_case": True}]
    labels = {"a": "3.5", "b": "3.5", "c": ["no", "Yes"], "d": "a+b"}
    replies = {"a": "3.5.", "b": "3x5", "c": "yes", "d": "a+b"}
    assert cell(TEXT, written, labels, replies)["regex"]["mean"] == pytest.approx(3 / 4)
    assert whys(TEXT, written, labels, replies)["b"] == Score(0.0, "no match")


def test_an_invalid_regex_is_a_config_error_naming_the_entry() -> None:
    with pytest.raises(ConfigError, match=r"task.scorers\[1\]\.pattern: .*not a valid regular expression"):
        scorers(TEXT, ["exact", {"name": "regex", "pattern": "(unclosed"}])
    with pytest.raises(ConfigError, match=r"task.scorers\[0\]\.pattern: Field required"):
        scorers(TEXT, ["regex"])


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Two dogs.", "2 dogs"),
        ("The cat's toy", "cat 's toy"),
        ("dont know", "don't know"),
        ("Black-and-white", "black and white"),
        ("black - white", "black white"),
        ("2.5", "2.5"),
        ("Yes!", "yes"),
        ("1,000", "1000"),
        ("None", "0"),
        ("an apple, a pear", "apple pear"),
        ("youre right", "you're right"),
    ],
)
def test_vqa_normalisation(text: str, normal: str) -> None:
    assert normalise(text) == normal


def test_exact_with_vqa_normalisation() -> None:
    labels = {"a": "2 dogs", "b": "black and white", "c": "don't know", "d": "yes"}
    replies = {"a": "Two dogs.", "b": "Black-and-white", "c": "dont know", "d": "no"}
    got = cell(TEXT, ["exact", {"name": "exact", "as": "vqa", "vqa": True}], labels, replies)
    assert got["exact"]["mean"] == 0.0 and got["vqa"]["mean"] == 0.75
    assert whys(TEXT, [{"name": "exact", "vqa": True}], labels, replies)["d"] == Score(
        0.0, "'no' after VQA normalisation"
    )
    with pytest.raises(ConfigError, match=r"task.scorers\[0\]: scorer 'exact' cannot score this task: it normalises"):
        scorers(Task("t", "p", "integer"), [{"name": "exact", "vqa": True}])


def test_vqa_accuracy_by_hand() -> None:
    labels = {"a": ["2"] * 3 + ["3"] * 7, "b": ["2"] * 3 + ["3"] * 7, "c": ["4"] + ["3"] * 9, "d": ["4"] + ["3"] * 9}
    replies = {"a": "two", "b": "3", "c": "Four.", "d": "5"}
    got = whys(TEXT, ["vqa_accuracy"], labels, replies)
    # three of ten said it: each left-out set of nine holds 2 (for the 3 who said it) or 3 (for the 7 others)
    # matches: (3 * 2/3 + 7 * 1) / 10 = 0.9; one of ten: (1 * 0 + 9 * 1/3) / 10 = 0.3
    assert got["a"] == Score(pytest.approx(0.9), "3 of 10 people said it")
    assert got["b"] == Score(1.0)
    assert got["c"] == Score(pytest.approx(0.3), "1 of 10 people said it")
    assert got["d"].value == 0.0


JSON = Task("t", "p", "json")


def test_iou_by_hand() -> None:
    labels = {
        "a": [[0, 0, 10, 10], [20, 20, 30, 40]],
        "b": [[5, 0, 15, 10], [50, 50, 60, 60]],
        "c": [],
        "d": [[0, 0, 10, 10]],
    }
    replies = {
        "a": [[20, 20, 30, 30], [0, 0, 10, 10]],  # IoU 1 and 100/200 = 0.5: both match
        "b": [[0, 0, 10, 10]],  # IoU 50/150 with the first: no match
        "c": [],  # nothing to find, nothing found: 1
        "d": [[0, 0, 10, 10], [100, 100, 110, 110]],  # one match, one box invented: F1 2/3
    }
    got = cell(JSON, [{"name": "iou", "format": "xyxy"}], labels, replies)["iou"]
    assert got["mean"] == pytest.approx((1 + 0 + 1 + 2 / 3) / 4)
    assert got["metrics"] == {
        "precision": pytest.approx(3 / 5),
        "recall": pytest.approx(3 / 5),
        "f1": pytest.approx(3 / 5),
        "mean_iou": pytest.approx((1 + 0.5 + 1) / 3),
        "unreadable_answers": 0,
    }
    why = whys(JSON, [{"name": "iou", "format": "xyxy"}], labels, replies)
    assert why["b"] == Score(0.0, "0 of 2 boxes matched, 1 given")
    strict = cell(JSON, [{"name": "iou", "format": "xyxy", "threshold": 0.6}], labels, replies)["iou"]
    assert strict["mean"] == pytest.approx((2 / 4 + 0 + 1 + 2 / 3) / 4)


def test_iou_pairs_boxes_for_the_most_matches_where_greedy_would_not() -> None:
    # all 10 high; along x: R1 0-10, R2 2-12; A 1.5-11.5 (IoU 0.74 with R1, 0.90 with R2), B 4-14 (0.43, 0.67).
    # Greedy takes A-R2 first and leaves B under the threshold; the best pairing is A-R1, B-R2: two matches.
    labels = {"a": [[0, 0, 10, 10], [2, 0, 12, 10]]}
    replies = {"a": [[1.5, 0, 11.5, 10], [4, 0, 14, 10]]}
    got = cell(JSON, [{"name": "iou", "format": "xyxy"}], labels, replies)["iou"]
    assert got["mean"] == 1.0 and got["metrics"]["mean_iou"] == pytest.approx((8.5 / 11.5 + 8 / 12) / 2)


def test_iou_of_gemini_detections_under_a_key_with_labels() -> None:
    # Gemini's [ymin, xmin, ymax, xmax]: the answer is 100 high and 200 wide, the label 100 by 100: IoU 0.5
    label = {"boxes": [{"box_2d": [0, 0, 100, 100], "label": "face"}]}
    labels = {"a": label, "b": label, "c": label}
    replies = {
        "a": {"boxes": [{"box_2d": [0, 0, 100, 200], "label": "Face"}]},
        "b": {"boxes": [{"box_2d": [0, 0, 100, 100], "label": "hand"}]},
        "c": {"faces": []},
    }
    written = [
        {"name": "iou", "key": "boxes"},
        {"name": "iou", "as": "labelled", "key": "boxes", "match_labels": True},
    ]
    got = cell(JSON, written, labels, replies)
    assert got["iou"]["mean"] == pytest.approx(2 / 3) and got["labelled"]["mean"] == pytest.approx(1 / 3)
    assert got["iou"]["metrics"]["unreadable_answers"] == 1
    assert whys(JSON, written[:1], labels, replies)["c"] == Score(0.0, "the answer holds no boxes in gemini format")


def test_iou_reads_xywh_boxes() -> None:
    # [5, 5, 10, 10] is 5-15 by 5-15; [5, 5, 15, 15] is 5-20 by 5-20: IoU 100/225, a match at 0.4
    got = cell(
        JSON, [{"name": "iou", "format": "xywh", "threshold": 0.4}], {"a": [[5, 5, 15, 15]]}, {"a": [[5, 5, 10, 10]]}
    )
    assert got["iou"]["metrics"]["mean_iou"] == pytest.approx(100 / 225)


# -- the boxes demo ------------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "framework" / "sample_images"


def test_the_face_boxes_are_one_per_person_of_each_group_image() -> None:
    import json

    faces = json.loads((SAMPLES / "labels-faces.json").read_text())
    counts = {n: v["person_count"] for n, v in json.loads((SAMPLES / "labels.json").read_text()).items()}
    assert set(faces) == {n for n in counts if n.startswith("group_")}
    for name, label in faces.items():
        boxes = [face["box_2d"] for face in label["faces"]]
        assert len(boxes) == counts[name], name
        assert all(0 <= y0 < y1 <= 1000 and 0 <= x0 < x1 <= 1000 for y0, x0, y1, x1 in boxes), name
        # the tiles do not overlap, so neither do their faces
        s = scorers(JSON, [{"name": "iou", "key": "faces", "threshold": 0.01}])
        assert s.score_cell(rows({"a": {"faces": boxes[:1]}}), answers({"a": {"faces": boxes[1:]}}))["iou"]["mean"] == 0


def test_the_emulator_moves_a_box_whole() -> None:
    import random

    from visionbench.emulator.replies import perturbed_json

    label = [{"box_2d": [100, 200, 300, 400], "label": "face"} for _ in range(50)]
    got = perturbed_json(label, 0.9, random.Random(1))
    boxes = [face["box_2d"] for face in got]  # a face may be missed, or its label dropped, but never its box
    assert len(got) < 50 and any(box != [100, 200, 300, 400] for box in boxes)  # faces missed, boxes moved
    for y0, x0, y1, x1 in boxes:  # each moved by at most a third of its 200 x 200 extent, its size kept
        assert y1 - y0 == 200 and x1 - x0 == 200 and abs(y0 - 100) <= 67 and abs(x0 - 200) <= 67


async def test_the_boxes_demo_runs_end_to_end_against_the_emulator(tmp_path: Path) -> None:
    """configs/boxes-emulated.yaml, the emulator instant and without faults: the four images answered with the
    label's boxes, some moved or missed; IoU matching scores them."""
    import yaml

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.runner import run

    source = ROOT / "configs" / "boxes-emulated.yaml"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config["dataset"]["path"] = str((source.parent / config["dataset"]["path"]).resolve())
    quiet = {
        "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
        "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
        "rate_limit": {"requests_per_minute": None},
    }
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": quiet, "models": {"*": {}}}))
    config["emulator"] = {"profiles": str(profiles)}
    path = tmp_path / "boxes.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = load_plan(path, default_registry())
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    bundle_mod.validate(data)
    [cell] = data["cells"]
    scores = cell["summary"]["scores"]
    assert scores["iou"]["n"] == 4 and cell["summary"]["errors"] <= 1
    assert 0.5 <= scores["iou"]["mean"] < 1.0 and scores["iou_75"]["mean"] <= scores["iou"]["mean"]
    metrics = scores["iou"]["metrics"]
    assert metrics["precision"] > 0.8 and metrics["recall"] > 0.7 and 0.5 <= metrics["mean_iou"] <= 1.0
