"""Rows manifests (JSONL, CSV, TSV: an image, named fields and a reference answer per row), image URLs and data
URLs, and prompt templates filled from each row (issue 24, parts 1 and 2)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from visionbench.data.dataset import Columns, load_dataset, sha256_file
from visionbench.errors import ConfigError
from visionbench.run.prompts import prompt_for
from visionbench.types import Task, fill_template, template_fields

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
BOOL = Task("vqa", "{question} Answer yes or no.", "boolean")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def copies(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SAMPLES / name, folder / name)


# -- templates -----------------------------------------------------------------------------------------------------
def test_template_placeholders_and_literal_braces() -> None:
    text = 'Q: {question} Reply as JSON like {"count": 3}, or {{question}}; options: {options}'
    assert template_fields(text) == ["question", "options"]
    filled = fill_template(text, {"question": "How many?", "options": ["a", "b"]})
    assert filled == 'Q: How many? Reply as JSON like {"count": 3}, or {question}; options: ["a", "b"]'
    assert fill_template("no braces", None) == "no braces"
    assert template_fields('{"count": 3} { x } {1}') == []  # only {identifier} is a placeholder


def test_shipped_folder_configs_prompts_have_no_placeholders() -> None:
    """Only a rows manifest fills placeholders (vqa-emulated's ``{question}``); a folder config's braces are literal."""
    for config in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"):
        spec = yaml.safe_load(config.read_text()) or {}
        if str((spec.get("dataset") or {}).get("path", "")).endswith((".jsonl", ".csv", ".tsv")):
            continue
        task = spec.get("task") or {}
        for key in ("prompt", "system"):
            assert not template_fields(task.get(key) or ""), config
            assert "{{" not in (task.get(key) or "") and "}}" not in (task.get(key) or ""), config


def test_prompt_for_fills_one_item_and_a_shared_multi_image_prompt() -> None:
    assert prompt_for(BOOL, 1, {"question": "Is there a cat?"}) == "Is there a cat? Answer yes or no."
    assert "answer this question: Is there a cat? Answer yes or no." in prompt_for(
        BOOL, 3, {"question": "Is there a cat?"}
    )


# -- loading -------------------------------------------------------------------------------------------------------
def test_jsonl_rows_with_fields_typed_answers_and_ids(tmp_path: Path) -> None:
    copies(tmp_path, "chelsea.jpg", "astronaut.jpg")
    manifest = write_jsonl(
        tmp_path / "vqa.jsonl",
        [
            {"image": "chelsea.jpg", "question": "Is there a cat?", "answer": True, "source": "skimage"},
            {"id": "q2", "image": "astronaut.jpg", "question": "Is there a dog?", "answer": False},
        ],
    )
    items = load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")
    assert [i.id for i in items] == ["chelsea.jpg", "q2"]  # the file's order; id: the id column, else the path
    assert [i.label for i in items] == [True, False]
    assert items[0].fields == {"question": "Is there a cat?", "source": "skimage"}
    assert items[0].sha256 == sha256_file(SAMPLES / "chelsea.jpg")
    assert items[1].path == tmp_path / "astronaut.jpg"
    assert list(items.identities())[1] == ("q2", items[1].sha256, False, {"question": "Is there a dog?"}, None)


def test_csv_and_tsv_answers_are_typed_by_the_answer_type(tmp_path: Path) -> None:
    copies(tmp_path, "chelsea.jpg", "coffee.jpg", "rocket.jpg")
    (tmp_path / "c.csv").write_text(
        'picture,gold,question\nchelsea.jpg,2,"How many cats, or dogs?"\ncoffee.jpg,,How many cups?\n'
    )
    count = Task("count", "{question}", "integer")
    items = load_dataset(tmp_path / "c.csv", None, None, task=count, columns=Columns(image="picture", answer="gold"))
    assert [(i.id, i.label, i.fields) for i in items] == [
        ("chelsea.jpg", 2, {"question": "How many cats, or dogs?"}),
        ("coffee.jpg", None, {"question": "How many cups?"}),  # an empty cell: unlabelled
    ]
    (tmp_path / "b.tsv").write_text("image\tanswer\tquestion\nrocket.jpg\tyes\tA rocket?\ncoffee.jpg\tFalse\tA cat?\n")
    assert [i.label for i in load_dataset(tmp_path / "b.tsv", None, None, task=BOOL)] == [True, False]
    choice = Task("scene", "{question}", "choice", choices=("Food", "Outdoor"))
    (tmp_path / "s.csv").write_text("image,answer,question\nrocket.jpg,outdoor,Where?\n")
    assert load_dataset(tmp_path / "s.csv", None, None, task=choice)[0].label == "Outdoor"
    js = Task("obj", "{question}", "json")
    (tmp_path / "j.csv").write_text('image,answer,question\nrocket.jpg,"{""kind"": ""rocket""}",What?\n')
    assert load_dataset(tmp_path / "j.csv", None, None, task=js)[0].label == {"kind": "rocket"}


@pytest.mark.parametrize(
    ("rows", "task", "message"),
    [
        (
            [{"image": "chelsea.jpg", "answer": "yes", "question": "q"}],
            BOOL,
            "line 2, column 'answer': the answer is 'yes'",
        ),
        (
            [{"image": "chelsea.jpg", "answer": 1.5, "question": "q"}],
            Task("c", "{question}", "integer"),
            "line 2, column 'answer'",
        ),
        (
            [{"image": "chelsea.jpg", "answer": "cow", "question": "q"}],
            Task("c", "{question}", "choice", choices=("cat", "dog")),
            "not one of the task's choices",
        ),
        (
            [{"image": "nope.jpg", "answer": True, "question": "q"}],
            BOOL,
            "line 2, column 'image': image 'nope.jpg' does not exist",
        ),
        ([{"answer": True, "question": "q"}], BOOL, "line 2, column 'image': no image"),
        ([{"image": "chelsea.jpg", "answer": True}], BOOL, "line 2, column 'question': the row has no 'question'"),
        (
            [
                {"image": "chelsea.jpg", "answer": True, "question": "a"},
                {"image": "chelsea.jpg", "answer": True, "question": "b"},
            ],
            BOOL,
            "line 3: id 'chelsea.jpg' is also line 2's",
        ),
    ],
)
def test_row_errors_name_the_file_line_and_column(
    tmp_path: Path, rows: list[dict[str, Any]], task: Task, message: str
) -> None:
    copies(tmp_path, "chelsea.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n" + "".join(json.dumps(r) + "\n" for r in rows))  # a blank first line: lines count from 1
    with pytest.raises(ConfigError) as err:
        load_dataset(manifest, None, None, task=task, downloads=tmp_path / "dl")
    assert str(manifest) in str(err.value) and message in str(err.value)


def test_nan_answers_are_refused_with_the_line(tmp_path: Path) -> None:
    copies(tmp_path, "chelsea.jpg")
    (tmp_path / "n.jsonl").write_text('{"image": "chelsea.jpg", "answer": NaN}\n')
    with pytest.raises(ConfigError, match=r"n.jsonl: line 1, column 'answer': the answer is or holds nan"):
        load_dataset(tmp_path / "n.jsonl", None, None, task=Task("n", "How many?", "number"))
    (tmp_path / "n.csv").write_text("image,answer\nchelsea.jpg,nan\n")
    with pytest.raises(ConfigError, match=r"n.csv: line 2, column 'answer'"):
        load_dataset(tmp_path / "n.csv", None, None, task=Task("n", "How many?", "number"))


def test_a_placeholder_on_a_folder_dataset_is_an_error(tmp_path: Path) -> None:
    copies(tmp_path / "f", "chelsea.jpg")
    with pytest.raises(ConfigError, match=r"placeholders \(\{question\}\) that nothing fills"):
        load_dataset(tmp_path / "f", None, None, task=BOOL)
    literal = Task("t", 'Reply {{"n": 1}} or {"n": 2}', "json")
    assert len(load_dataset(tmp_path / "f", None, None, task=literal)) == 1


def test_data_urls_are_decoded_and_hashed_by_their_bytes(tmp_path: Path) -> None:
    data = (SAMPLES / "coffee.jpg").read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    manifest = write_jsonl(tmp_path / "d.jsonl", [{"image": url, "answer": False, "question": "A cat?"}])
    [item] = load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")
    assert item.id == "row-1" and item.path.read_bytes() == data and item.path.parent == tmp_path / "dl"
    assert item.sha256 == sha256_file(SAMPLES / "coffee.jpg")
    write_jsonl(manifest, [{"image": "data:image/png;base64,@@@", "answer": False, "question": "q"}])
    with pytest.raises(ConfigError, match=r"d.jsonl: line 1, column 'image': malformed data URL"):
        load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")


@pytest.fixture
def image_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server of the sample images (``/img/NAME``), in a thread of its own; yields its base URL
    and the paths it was asked for."""
    hits: list[str] = []
    started = threading.Event()
    box: dict[str, Any] = {}

    async def image(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        path = SAMPLES / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type="image/jpeg")

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/img/{name}", image)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        box["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        box["loop"] = loop
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    yield box["url"], hits
    box["loop"].call_soon_threadsafe(box["loop"].stop)
    thread.join(10)


def test_urls_are_downloaded_once_into_the_cache(tmp_path: Path, image_server: tuple[str, list[str]]) -> None:
    base, hits = image_server
    rows = [
        {"image": f"{base}/img/rocket.jpg", "answer": False, "question": "A person?"},
        {"image": f"{base}/img/astronaut.jpg", "answer": True, "question": "A person?", "id": "astro"},
    ]
    manifest = write_jsonl(tmp_path / "u.jsonl", rows)
    items = load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")
    assert [i.id for i in items] == ["row-1", "astro"]
    assert items[0].sha256 == sha256_file(SAMPLES / "rocket.jpg") and items[0].path.parent == tmp_path / "dl"
    assert sorted(hits) == ["/img/astronaut.jpg", "/img/rocket.jpg"]
    load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")
    assert len(hits) == 2  # the second load reads the downloads
    write_jsonl(manifest, [*rows, {"image": f"{base}/img/gone.jpg", "answer": True, "question": "q"}])
    with pytest.raises(ConfigError, match=rf"line 3, column 'image': cannot fetch {base}/img/gone.jpg: HTTP Error 404"):
        load_dataset(manifest, None, None, task=BOOL, downloads=tmp_path / "dl")


def test_cache_dir_given_to_the_plan_holds_the_downloads(
    tmp_path: Path, image_server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --cache-dir DIR` (load_plan's cache_dir) puts a manifest's downloads in DIR/downloads, over the default."""
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    monkeypatch.setenv("VISIONBENCH_CACHE_DIR", str(tmp_path / "default-cache"))
    base, _ = image_server
    write_jsonl(tmp_path / "u.jsonl", [{"image": f"{base}/img/rocket.jpg", "answer": False, "question": "A person?"}])
    config = {
        "name": "dl",
        "dataset": {"path": "u.jsonl"},
        "task": {"answer": "boolean", "prompt": "{question} Answer yes or no."},
        "matrix": [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]}],
    }
    path = tmp_path / "dl.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = load_plan(path, default_registry(), cache_dir=tmp_path / "given")
    assert plan.items[0].path.parent == tmp_path / "given" / "downloads"
    assert not (tmp_path / "default-cache").exists()


# -- a run against the emulator ------------------------------------------------------------------------------------
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}
#: A question per image, and its answer.
VQA = {
    "astronaut.jpg": ("Is there a person in this picture?", True),
    "chelsea.jpg": ("Is there a cat in this picture?", True),
    "coffee.jpg": ("Is there a person in this picture?", False),
    "rocket.jpg": ("Is there a rocket in this picture?", True),
    "group_2.jpg": ("Is there an animal in this picture?", False),
    "camera.jpg": ("Is there a person holding a camera?", True),
}


def vqa_config(tmp_path: Path, matrix: list[dict[str, Any]]) -> Path:
    folder = tmp_path / "vqa"
    copies(folder, *VQA)
    rows = [{"id": f"q{n}", "image": name, "question": q, "answer": a} for n, (name, (q, a)) in enumerate(VQA.items())]
    write_jsonl(folder / "vqa.jsonl", rows)
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    config = {
        "name": "vqa",
        "dataset": {"path": str(folder / "vqa.jsonl")},
        "task": {"id": "vqa", "answer": "boolean", "prompt": "{question} Answer yes or no."},
        "preprocessing": {"max_side": 512},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "cache_dir": str(tmp_path / "c"),
        "matrix": matrix,
    }
    path = tmp_path / "vqa.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def test_a_vqa_jsonl_runs_against_the_emulator_with_each_rows_question(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.emulator import Emulator
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    started: list[Emulator] = []
    enter = Emulator.__aenter__

    async def keep(self: Emulator) -> Emulator:  # the run's emulator, to read the prompts it was sent
        started.append(self)
        return await enter(self)

    monkeypatch.setattr(Emulator, "__aenter__", keep)
    path = vqa_config(
        tmp_path,
        [
            {"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["sequential", "provider-batch"]},
            {
                "provider": "gemini",
                "models": ["gemini-3.5-flash"],
                "strategies": [{"name": "concurrent", "max_concurrency": 3}],
            },
            {"provider": "anthropic", "models": ["claude-haiku-4-5"], "strategies": ["sequential"]},
        ],
    )
    out = await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    lazy = bundle_mod.load(out, lazy=True)  # what report, compare and resume read
    assert [item.fields for item in lazy.item_entries] == [{"question": q} for q, _ in VQA.values()]
    assert data["status"] == "complete" and len(data["cells"]) == 4
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]  # every reply parsed as yes/no
        assert cell["summary"]["exact_match"] >= 0.6, cell["id"]  # answered from each row's answer
    by_id = {item["id"]: item for item in data["items"]}
    assert by_id["q1"]["fields"] == {"question": "Is there a cat in this picture?"} and by_id["q1"]["label"] is True
    [emu] = started
    assert emu.engine is not None
    asked = list(emu.engine.asked)
    assert len(asked) == 4 * len(VQA)
    questions = {f"q{n}": q for n, (q, _) in enumerate(VQA.values())}
    for prompt, keys in asked:  # each request carried its own item's question
        [key] = keys  # the emulator knows a rows manifest's images by the items' ids
        assert key is not None and prompt == f"{questions[key]} Answer yes or no.", key


def test_single_prompt_refuses_items_with_different_prompts(tmp_path: Path) -> None:
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    path = vqa_config(
        tmp_path,
        [
            {
                "provider": "gemini",
                "models": ["gemini-3.5-flash"],
                "strategies": [{"name": "single-prompt", "chunk_size": 3}],
            }
        ],
    )
    with pytest.raises(ConfigError, match=r"single-prompt.*asks several items in one request.*different prompts"):
        load_plan(path, default_registry())
