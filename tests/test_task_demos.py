"""The shipped task demos (issue 24, part 6): a yes/no, a classification and a receipt-extraction config, each run
from a fresh clone against the emulator; and the receipts they read, drawn deterministically with known fields."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

import visionbench
from visionbench.emulator.matching import analyse

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(visionbench.__file__).parent
SAMPLES = PACKAGE / "sample_images"
RECEIPTS = PACKAGE / "sample_receipts"
#: config -> the summary field that measures it
DEMOS = {
    "yes-no-emulated": "exact_match",
    "classify-emulated": "exact_match",
    "receipts-emulated": "field_match",
    "vqa-emulated": "exact_match",
}
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}


def _tool() -> ModuleType:
    """tools/sample_receipts.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("sample_receipts", ROOT / "tools" / "sample_receipts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sample_receipts", module)
    spec.loader.exec_module(module)
    return module


# -- the receipts --------------------------------------------------------------------------------------------------
def test_receipts_are_labelled_small_and_each_label_is_its_fields() -> None:
    labels = json.loads((RECEIPTS / "labels.json").read_text())
    files = sorted(p.name for p in RECEIPTS.glob("*.jpg"))
    assert files == sorted(labels) and 8 <= len(files) <= 12
    assert sum(p.stat().st_size for p in RECEIPTS.iterdir()) < 1_000_000
    for label in labels.values():
        assert set(label) == {"shop", "date", "total", "items"}  # the whole object is the answer: nothing else in it
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", label["date"]) and label["items"] >= 1 and label["total"] > 0


def test_redrawing_the_receipts_gives_the_shipped_labels_and_images(tmp_path: Path) -> None:
    tool = _tool()
    labels = tool.write_receipts(tmp_path / "a")
    tool.write_receipts(tmp_path / "b")
    assert labels == json.loads((RECEIPTS / "labels.json").read_text())
    for name in labels:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name  # deterministic
        with Image.open(tmp_path / "a" / name) as drawn, Image.open(RECEIPTS / name) as shipped:
            assert drawn.size == shipped.size, name
            diff = np.abs(np.asarray(drawn, dtype=np.int16) - np.asarray(shipped, dtype=np.int16))
            assert diff.mean() < 2, name  # the same picture (a newer Pillow or libjpeg may differ by a few levels)


def test_each_label_is_what_its_receipt_prints() -> None:
    tool = _tool()
    labels = json.loads((RECEIPTS / "labels.json").read_text())
    for index, (seed, items) in enumerate(tool.RECEIPTS):
        receipt = tool.make_receipt(index, seed, items)
        label = labels[receipt.file]
        assert label["items"] == len(receipt.lines) == items
        assert round(sum(cents for _, cents in receipt.lines) / 100, 2) == label["total"]  # total = sum of items
        assert label["shop"] == receipt.shop and label["date"] == receipt.date.isoformat()


def test_no_two_receipts_look_alike_to_the_emulator() -> None:
    """Receipts are much alike (white paper, black text): the table under each one keeps them apart for the
    emulator's perceptual hash, far beyond its 40-bit limit, and each still matches itself resized and re-encoded."""
    names = sorted(json.loads((RECEIPTS / "labels.json").read_text()))
    prints = {n: analyse((RECEIPTS / n).read_bytes()).fingerprint for n in names}
    apart = min(int((prints[a].bits != prints[b].bits).sum()) for a, b in combinations(names, 2))
    assert apart > 55
    for name in names:
        with Image.open(RECEIPTS / name) as im:
            im = im.convert("RGB")
            im.thumbnail((384, 384))
            out = io.BytesIO()
            im.save(out, "JPEG", quality=60)
        small = analyse(out.getvalue()).fingerprint
        assert int((small.bits != prints[name].bits).sum()) < 30, name


# -- the labels of the sample images -------------------------------------------------------------------------------
def test_the_yes_no_and_scene_labels_agree_with_the_counts() -> None:
    counts = {n: v["person_count"] for n, v in json.loads((SAMPLES / "labels.json").read_text()).items()}
    person = json.loads((SAMPLES / "labels-person.json").read_text())
    scene = json.loads((SAMPLES / "labels-scene.json").read_text())
    assert person == {n: c > 0 for n, c in counts.items()}
    choices = yaml.safe_load((ROOT / "configs" / "classify-emulated.yaml").read_text())["task"]["choices"]
    assert set(scene) == set(counts) and set(scene.values()) == set(choices)
    assert all((scene[n] == "group") == (c > 1) for n, c in counts.items())


# -- the demos, end to end -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DEMOS))
async def test_a_shipped_demo_runs_end_to_end_against_the_emulator(tmp_path: Path, name: str) -> None:
    """The shipped config as it is, but the emulator instant and without faults (its answer error model kept):
    every item answered and parsed, most right, in every cell."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    source = ROOT / "configs" / f"{name}.yaml"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config["dataset"]["path"] = str((source.parent / config["dataset"]["path"]).resolve())
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    config["emulator"] = {"profiles": str(profiles)}
    config["retry"] = {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = load_plan(path, default_registry())
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    bundle_mod.validate(data)
    assert data["status"] == "complete" and len(data["cells"]) == 6
    assert {c["id"].split("/")[0] for c in data["cells"]} == {"gemini", "anthropic", "openai"}
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]
        answers = cell["answers"]
        assert len(answers) == len(plan.items) >= 8, cell["id"]  # every item answered and parsed
        assert all(a.get("value") is not None for a in answers.values()), cell["id"]
        assert cell["summary"][DEMOS[name]] >= 0.6, (cell["id"], cell["summary"][DEMOS[name]])
