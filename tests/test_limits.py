"""Runs kept within the documented limits: single-prompt chunks and resizes, plan warns, validate refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from visionbench.cli import main
from visionbench.errors import ConfigError
from visionbench.preprocessing import Preprocessing
from visionbench.results import bundle as bundle_mod
from visionbench.run.estimate import estimate
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry
from visionbench.run.runner import run
from visionbench.strategies.single_prompt import SinglePrompt
from visionbench.types import Capabilities, ImageItem, PreparedImage

QUIET = {
    "latency": {"base_s": 0, "jitter": 0, "output_tokens_per_s": 1e9},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
    "answers": {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0},
}


def experiment(tmp_path: Path, n: int, side: int, strategy: dict | str, max_side: int | None) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    labels = {}
    for i in range(n):
        Image.new("RGB", (side, 40 + i), (i * 9 % 256, 90, 160)).save(images / f"wide{i:02d}.png")
        labels[f"wide{i:02d}.png"] = {"person_count": 0}
    (images / "labels.json").write_text(json.dumps(labels))
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"time_scale": 0, "models": {"*": QUIET}}))
    config = {
        "name": "limits",
        "dataset": {"path": str(images), "labels": "labels.json", "label_field": "person_count"},
        "task": {"prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": max_side, "format": "png"},
        "emulator": {"time_scale": 0, "profiles": str(profiles)},
        "retry": {"max_attempts": 1, "timeout_s": 30},
        "matrix": [{"provider": "anthropic", "models": ["claude-haiku-4-5"], "strategies": [strategy]}],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_chunk_size_above_the_documented_images_per_request_is_refused(tmp_path: Path) -> None:
    path = experiment(tmp_path, 2, 100, {"name": "single-prompt", "chunk_size": 150}, 1536)
    with pytest.raises(ConfigError, match="chunk_size 150 exceeds the provider's 100 images per request"):
        load_plan(path, default_registry())


@pytest.mark.parametrize("n, sent_side", [(22, 2000), (20, 8000)])
async def test_unresized_images_are_resized_within_the_many_images_rule(tmp_path: Path, n: int, sent_side: int) -> None:
    """``max_side: null`` with 22 images of 2100 px: the real service refuses every request; sent at 2000 px."""
    path = experiment(tmp_path, n, 2100, {"name": "single-prompt"}, None)
    plan = load_plan(path, default_registry())
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    (record,) = data["records"]
    assert record["error"] is None and len(record["item_ids"]) == n
    assert record["max_side"] == sent_side  # 20 images are not "many": the 8000 px limit applies
    caps = plan.providers["anthropic"].capabilities("claude-haiku-4-5")
    (planned,) = next(iter(plan.strategies.values())).plan(plan.items, caps)
    assert planned.max_side == (2000 if n > 20 else 8000)


class StubContext:
    """Just what single-prompt uses: capabilities, prepare (1000-byte images, 2000 px unless resized) and ask."""

    def __init__(self, caps: Capabilities) -> None:
        self.caps, self.preprocessing, self.asked = caps, Preprocessing(max_side=None), []

    def capabilities(self) -> Capabilities:
        return self.caps

    async def prepare(self, item: ImageItem, max_side: int | None = None) -> PreparedImage:
        side = min(2000, max_side or 2000)
        return PreparedImage(item.id, b"x" * (1000 * side // 2000), "image/png", side, side)

    async def ask(self, items, max_side=None):
        self.asked.append((len(items), max_side))
        return []


async def test_requests_are_split_within_the_bytes_per_request_and_images_shrunk_within_the_bytes_per_image() -> None:
    items = [ImageItem(f"i{n}", Path(f"i{n}"), "0") for n in range(5)]
    ctx = StubContext(Capabilities(max_images_per_request=10, max_request_bytes=3000))
    await SinglePrompt().run(items, ctx)
    assert ctx.asked == [(2, None), (2, None), (1, None)]  # 1336 base64 bytes each, 2 fit below 95% of 3000
    ctx = StubContext(Capabilities(max_images_per_request=10, max_image_bytes=1000))
    await SinglePrompt().run(items, ctx)
    assert ctx.asked == [(5, 1500)]  # 1336 > 1000: shrunk to 3/4 of the side, 1000 base64 bytes


async def test_plan_warns_about_images_the_service_would_refuse(tmp_path: Path) -> None:
    """One image a request cannot adapt: ``plan`` says the 8100 px image is above Anthropic's 8000 px."""
    plan = load_plan(experiment(tmp_path, 1, 8100, "sequential", None), default_registry())
    (est,) = await estimate(plan)
    assert any("8000 px limit for requests of 1 images" in note for note in est.notes)


@pytest.mark.parametrize(
    "provider, model, params, expected",
    [
        ("anthropic", "claude-haiku-4-5", {"thinking_budget": 2048}, "must be below max_output_tokens 1024"),
        ("anthropic", "claude-haiku-4-5", {"thinking_budget": 512, "max_output_tokens": 4096}, "minimum 1024"),
        ("gemini", "gemini-2.5-pro", {"thinking_budget": 0}, "cannot turn thinking off"),
        ("gemini", "gemini-2.5-flash", {"thinking_budget": 30000}, "outside gemini-2.5-flash's 0 to 24576"),
    ],
)
def test_validate_refuses_thinking_params_the_service_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str, model: str, params: dict, expected: str
) -> None:
    path = experiment(tmp_path, 1, 100, "sequential", 1536)
    spec = yaml.safe_load(path.read_text())
    spec["matrix"] = [{"provider": provider, "models": [model], "model_params": params, "strategies": ["sequential"]}]
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 2
    assert expected in capsys.readouterr().err
    spec["matrix"][0]["model_params"] = {"thinking_budget": 2048, "max_output_tokens": 4096}  # fine on both
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 0
