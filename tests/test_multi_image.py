"""Items of several images (issue 24, part 4): loaded from a row's list of images, sent whole by every strategy
(single-prompt names each item's images and expects one answer per item), answered per item by the emulator; and
rows that ask one image different questions, told apart by their question."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import QUIET

from visionbench.data.dataset import Columns, load_dataset, sha256_file
from visionbench.emulator.request import item_groups
from visionbench.errors import ConfigError
from visionbench.results.scoring import abs_error, accuracy, matches
from visionbench.run.prompts import multi_image_prompt, prompt_for
from visionbench.types import Answer, ImageItem, Task, images_sha256, with_system_for

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
#: id -> (images, label): items of two, three and one image; "solo" shares no first image with another item
ITEMS: dict[str, tuple[list[str], bool]] = {
    "pair-people": (["group_2.jpg", "group_4.jpg"], True),
    "pair-things": (["coffee.jpg", "rocket.jpg"], False),
    "triple": (["astronaut.jpg", "camera.jpg", "grace_hopper.jpg"], True),
    "solo": (["chelsea.jpg"], False),
}


def write_rows(folder: Path, rows: list[dict[str, Any]], name: str = "items.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        for image in row["image"] if isinstance(row["image"], list) else [row["image"]]:
            if not (folder / image).exists():
                shutil.copy(SAMPLES / image, folder / image)
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# -- loading -------------------------------------------------------------------------------------------------------
def test_a_row_may_list_several_images(tmp_path: Path) -> None:
    rows = [{"image": ["group_2.jpg", "group_4.jpg"], "answer": True}, {"image": "chelsea.jpg", "answer": False}]
    items = load_dataset(write_rows(tmp_path, rows), None, None, task=Task("t", "Same place?", "boolean"))
    pair, solo = items
    assert pair.id == "group_2.jpg+group_4.jpg" and solo.id == "chelsea.jpg" and not solo.parts
    hashes = [sha256_file(tmp_path / n) for n in ("group_2.jpg", "group_4.jpg")]
    assert [p.sha256 for p in pair.parts] == hashes and pair.sha256 == images_sha256(hashes) != hashes[0]
    assert [p.id for p in pair.images()] == ["group_2.jpg+group_4.jpg#1", "group_2.jpg+group_4.jpg#2"]
    assert pair.path == tmp_path / "group_2.jpg" and solo.images() == (solo,)
    # what the bundle keeps: the item's hash, and each image's
    assert list(items.identities())[0] == (pair.id, pair.sha256, True, {}, hashes)
    assert list(items.identities())[1][4] is None


def test_a_csv_cell_lists_images_as_a_json_array(tmp_path: Path) -> None:
    write_rows(tmp_path, [{"image": ["group_2.jpg", "group_4.jpg"]}])
    path = tmp_path / "items.csv"
    path.write_text('id,image,answer\np1,"[""group_2.jpg"", ""group_4.jpg""]",yes\n')
    [item] = load_dataset(path, None, None, task=Task("t", "Same?", "boolean"))
    assert item.id == "p1" and len(item.parts) == 2 and item.label is True


@pytest.mark.parametrize(
    ("cell", "message"),
    [([], "no image"), (["a.jpg", 3], "no image"), ('["a.jpg"', "JSON array of strings"), (["gone.jpg"], "gone")],
)
def test_a_bad_list_of_images_names_the_line_and_column(tmp_path: Path, cell: Any, message: str) -> None:
    write_rows(tmp_path, [{"image": "chelsea.jpg", "answer": 1}])
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"image": "chelsea.jpg", "answer": 1}) + "\n" + json.dumps({"image": cell}) + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_dataset(path, None, None, columns=Columns(), task=Task("t", "How many?", "integer"))
    assert "bad.jsonl: line 2, column 'image'" in str(err.value)


# -- wording -------------------------------------------------------------------------------------------------------
def test_one_item_of_several_images_is_asked_the_task_prompt_and_several_are_named() -> None:
    task = Task("t", "Is the second image the first one, later?", "boolean")
    assert prompt_for(task, 1, None, (3,)) == task.prompt  # one item: the task's own words, however many images
    text = prompt_for(task, 3, None, (2, 1, 2))
    assert "You are given 3 items of 5 images in all" in text
    assert "Item 1 is Images 1-2; Item 2 is Image 3; Item 3 is Images 4-5." in text
    assert "JSON array of 3 boolean values, one per item in order (Item 1 first)" in text
    assert multi_image_prompt(task, 2, None, (1, 1)) == multi_image_prompt(task, 2)  # an image each: as before
    # the emulator reads the items back from the wording; without it, an image each
    assert item_groups(text, 5) == [[0, 1], [2], [3, 4]]
    assert item_groups(multi_image_prompt(task, 2), 2) == [[0], [1]]
    assert item_groups("Item 1 is Images 1-2", 3) == [[0], [1], [2]]  # names fewer images than sent: ignored


def test_the_system_prompt_is_filled_from_the_row() -> None:
    task = Task("t", "{question}", "text", system="You answer about {topic}.")
    assert with_system_for(task, {"topic": "cats"}).system == "You answer about cats."
    plain = Task("t", "Q", "text", system="No braces.")
    assert with_system_for(plain, {"topic": "cats"}) is plain


def test_a_system_placeholder_no_row_fills_names_the_row(tmp_path: Path) -> None:
    path = write_rows(tmp_path, [{"image": "chelsea.jpg", "question": "What?", "answer": "cat"}])
    task = Task("t", "{question}", "text", system="About {topic}.")
    with pytest.raises(ConfigError, match=r"items.jsonl: line 1, column 'topic'.*task.system's \{topic\}"):
        load_dataset(path, None, None, task=task)
    with pytest.raises(ConfigError, match=r"task.system has placeholders \(\{topic\}\)"):
        load_dataset(SAMPLES, "labels.json", "person_count", task=Task("t", "How many?", system="About {topic}."))


# -- several acceptable answers -------------------------------------------------------------------------------------
def test_a_label_may_list_several_acceptable_answers(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "image": "chelsea.jpg", "answer": ["cat", "kitten"]},
        {"id": "b", "image": "coffee.jpg", "answer": "coffee"},
    ]
    items = load_dataset(write_rows(tmp_path, rows), None, None, task=Task("t", "What?", "text"))
    assert [i.label for i in items] == [["cat", "kitten"], "coffee"]
    assert matches("Kitten", ["cat", "kitten"], "text") and not matches("dog", ["cat", "kitten"], "text")
    assert matches(["cat", "kitten"], ["cat", "kitten"], "json")  # a json task's list label is the answer itself
    assert not matches("cat", ["cat"], "json")
    assert abs_error(12, [10, 13], "integer") == 1.0 and abs_error("x", [10], "integer") is None
    final = {"a": Answer("a", value="kitten"), "b": Answer("b", value="tea")}
    assert accuracy(items, final, "text")["exact_match"] == 0.5
    csv = tmp_path / "counts.csv"
    csv.write_text('image,answer\nchelsea.jpg,"[1, 2]"\ncoffee.jpg,0\n')
    counts = load_dataset(csv, None, None, task=Task("t", "How many?", "integer"))
    assert [i.label for i in counts] == [[1, 2], 0]
    scored = accuracy(counts, {"chelsea.jpg": Answer("chelsea.jpg", value=2)}, "integer")
    assert scored["exact_match"] == 0.5 and scored["mae"] == 0.0


def test_choices_listed_as_acceptable_are_kept_as_the_config_writes_them(tmp_path: Path) -> None:
    rows = [{"image": "chelsea.jpg", "answer": ["ANIMAL", "pet"]}]
    task = Task("t", "Which?", "choice", choices=("Animal", "Pet", "Food"))
    [item] = load_dataset(write_rows(tmp_path, rows), None, None, task=task)
    assert item.label == ["Animal", "Pet"]
    rows = [{"image": "chelsea.jpg", "answer": ["Animal", "Tree"]}]
    with pytest.raises(ConfigError, match=r"line 1, column 'answer'.*lists one that.*'Tree'"):
        load_dataset(write_rows(tmp_path, rows, "bad.jsonl"), None, None, task=task)


# -- a run against the emulator -------------------------------------------------------------------------------------
def config(tmp_path: Path, matrix: list[dict[str, Any]], rows: list[dict[str, Any]], task: dict[str, Any]) -> Path:
    manifest = write_rows(tmp_path / "data", rows)
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    spec = {
        "name": "multi",
        "dataset": {"path": str(manifest)},
        "task": task,
        "preprocessing": {"max_side": 384},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "cache_dir": str(tmp_path / "c"),
        "matrix": matrix,
    }
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


async def _run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Any]:
    from conftest import run_emulated

    return await run_emulated(path, tmp_path, monkeypatch)


@pytest.mark.slow
async def test_every_strategy_sends_items_whole_on_every_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"id": i, "image": images, "answer": label} for i, (images, label) in ITEMS.items()]
    matrix = [
        {
            "provider": "gemini",
            "models": ["gemini-3.5-flash"],
            "strategies": [
                "sequential",
                {"name": "single-prompt", "chunk_size": 2},
                "provider-batch",
                {"name": "adaptive", "tier1": {"max_side": 128}},
            ],
        },
        {
            "provider": "anthropic",
            "models": ["claude-haiku-4-5"],
            "strategies": [{"name": "concurrent", "max_concurrency": 2}, "single-prompt"],
        },
        {"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["sequential", "provider-batch"]},
    ]
    task = {"id": "same-scene", "answer": "boolean", "prompt": "Do these photos show people? Answer yes or no."}
    data, emu = await _run(config(tmp_path, matrix, rows, task), tmp_path, monkeypatch)
    assert data["status"] == "complete" and len(data["cells"]) == 8
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]  # one answer per item, parsed
        assert cell["summary"]["exact_match"] == 1.0, cell["id"]  # answered from each item's own label
        sent = [r for r in data["records"] if r["cell"] == cell["id"]]
        assert all(r["item_ids"] and set(r["item_ids"]) <= set(ITEMS) for r in sent)
    items = {item["id"]: item for item in data["items"]}
    assert len(items["triple"]["images"]) == 3 and "images" not in items["solo"]
    # The emulator saw each item whole: one recognised key per item asked, the item's own.
    for prompt, keys in emu.engine.asked:
        assert keys and all(key in ITEMS for key in keys), (prompt, keys)
        if len(keys) > 1:  # a single-prompt request: the items named with their images
            assert "Item 1 is Images 1-" in prompt and "one per item in order" in prompt
    pictures = sum(len(images) for images, _ in ITEMS.values())
    for cell in data["cells"]:
        requests = [r for r in data["records"] if r["cell"] == cell["id"] and r["tier"] != 1]
        if cell["id"].split("/", 1)[1].startswith("single-prompt"):  # whole items, chunk_size of them a request
            expected = 2 if cell["id"].startswith("gemini") else 1
            assert len(requests) == expected and sum(len(r["item_ids"]) for r in requests) == len(ITEMS)
    images = sum(stats.images for stats in emu.stats.values())
    # every item's every image in every cell (adaptive's two tiers: all, then again those its tier 1 said yes to)
    escalated = sum(len(images) for images, label in ITEMS.values() if label)
    assert images == 8 * pictures + escalated


@pytest.mark.slow
async def test_rows_asking_one_image_different_questions_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "animal", "image": "chelsea.jpg", "question": "What animal is in the photo?", "answer": "cat"},
        {"id": "count", "image": "chelsea.jpg", "question": "How many animals are there, in words?", "answer": "one"},
        {
            "id": "drink",
            "image": "coffee.jpg",
            "question": "What drink is in the cup?",
            "answer": ["coffee", "espresso"],
        },
        {
            "id": "more",
            "image": ["group_2.jpg", "group_4.jpg"],
            "question": "Which photo shows more people, the first or the second?",
            "answer": "second",
        },
    ]
    task = {
        "id": "vqa",
        "answer": "text",
        "prompt": "{question} Answer in one word.",
        "system": "You answer questions about {kind} photos.",
    }
    for row in rows:
        row["kind"] = "sample"
    matrix = [
        {"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]},
        {"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["provider-batch"]},
    ]
    data, emu = await _run(config(tmp_path, matrix, rows, task), tmp_path, monkeypatch)
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0, cell["id"]
        answers = cell["answers"]
        assert answers["animal"]["value"] == "cat" and answers["count"]["value"] == "one"
        assert answers["drink"]["value"] == "coffee" and answers["more"]["value"] == "second"
    questions = {row["id"]: f"{row['question']} Answer in one word." for row in rows}
    assert sorted(emu.engine.asked) == sorted((q, (i,)) for i, q in questions.items() for _ in range(2))


def test_an_item_of_several_images_is_planned_at_all_its_images(tmp_path: Path) -> None:
    import asyncio

    from visionbench.run.estimate import estimate
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    rows = [{"id": "pair", "image": ["group_2.jpg", "group_4.jpg"], "answer": 1}]
    single = [{"id": "one", "image": "group_2.jpg", "answer": 1}]
    task = {"id": "t", "answer": "integer", "prompt": "How many people?"}
    matrix = [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]}]
    [pair] = asyncio.run(estimate(load_plan(config(tmp_path / "a", matrix, rows, task), default_registry())))
    [one] = asyncio.run(estimate(load_plan(config(tmp_path / "b", matrix, single, task), default_registry())))
    assert pair.requests == one.requests == 1
    assert pair.image_tokens and one.image_tokens and pair.image_tokens > one.image_tokens


def test_the_face_counter_refuses_an_item_of_several_images() -> None:
    from visionbench.errors import BadRequest
    from visionbench.providers.local_faces import LocalFaces
    from visionbench.types import PreparedImage, Request

    image = PreparedImage("a#1", (SAMPLES / "chelsea.jpg").read_bytes(), "image/jpeg", 1, 1)
    request = Request(
        "centerface", Task("count-people", "How many?"), "How many?", (image, image), images_per_item=(2,)
    )
    import asyncio

    with pytest.raises(BadRequest, match="one image per item"):
        asyncio.run(LocalFaces().generate(request))
    assert ImageItem("x", Path("x"), "0").images()[0].id == "x"
