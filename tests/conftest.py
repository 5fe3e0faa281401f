"""Shared fixtures: a small labelled image set, a registry with the test plugin, config writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fakeplugin
import pytest
import yaml
from PIL import Image

from visionbench.clock import VirtualClock
from visionbench.run.plugins import collect, make_manager

# The replay server's fixture (`replay`) is shared by the provider tests.
pytest_plugins = ["replay_server"]

EVAL_IMAGES_ENV = "VISIONBENCH_EVAL_IMAGES"


def eval_images_dir() -> Path:
    """The 41 labelled eval photos, which are not in the repository (their licences forbid redistribution):
    the folder in $VISIONBENCH_EVAL_IMAGES, else ../shared/data/eval-images beside the repository."""
    folder = os.environ.get(EVAL_IMAGES_ENV)
    return Path(folder) if folder else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval-images"


EVAL_IMAGES = eval_images_dir()

#: For tests on the eval photos: skipped, saying how to provide them, where the folder has no labels.json.
needs_eval_images = pytest.mark.skipif(
    not (EVAL_IMAGES / "labels.json").is_file(),
    reason=f"needs the labelled eval photos (not shipped): none at {EVAL_IMAGES}; "
    f"set {EVAL_IMAGES_ENV} to their folder",
)


@pytest.fixture
def virtual():
    """A ``VirtualClock``: ``virtual.run(coro)`` runs a scenario on virtual time (no wall time, no load effects)."""
    clock = VirtualClock()
    yield clock
    clock.close()


@pytest.fixture
def registry():
    """Built-in plugins from entry points plus the scripted test provider."""
    return collect(make_manager([fakeplugin]))


def make_image_dir(folder: Path) -> Path:
    """Six small images (64+i x 48 px) with person-count labels 0..5, in ``folder`` (made here)."""
    folder.mkdir()
    labels = {}
    for i in range(6):
        Image.new("RGB", (64 + i, 48), (40 * i, 100, 200)).save(folder / f"img{i}.png")
        labels[f"img{i}.png"] = {"person_count": i}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Six small images with person-count labels 0..5."""
    return make_image_dir(tmp_path / "images")


def write_config(
    tmp_path: Path, image_dir: Path, strategies, *, provider: str = "scripted", options=None, **extra
) -> Path:
    config = {
        "name": "t",
        "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": 64},
        "retry": {"max_attempts": 3, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 5},
        "providers": {provider: options or {}},
        "matrix": [{"provider": provider, "models": ["m1"], "strategies": strategies}],
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def run_then_cancel(plan, results_dir: Path, run_id: str, after_s: float) -> None:
    """Start ``run(plan)``, cancel it after ``after_s`` (what Ctrl-C does), and check it was cancelled."""
    import asyncio

    from visionbench.run.runner import run

    task = asyncio.ensure_future(run(plan, results_dir=results_dir, run_id=run_id, cache_dir=None))
    await asyncio.sleep(after_s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def answers_for_labels() -> dict[str, int]:
    return {f"img{i}.png": i for i in range(6)}


#: Every built-in strategy, each set to finish fast on a few small images (the report and gallery tests run them all).
ALL_STRATEGIES = [
    "sequential",
    {"name": "concurrent", "max_concurrency": 3},
    {"name": "single-prompt", "chunk_size": 4},
    {"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 16}},
    {"name": "provider-batch", "poll_initial_s": 0.01, "poll_max_s": 0.02},
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first: with one worker per core (pytest-xdist) the long ones then overlap the many short ones
    instead of running last, each on its own."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


#: An emulator profile that answers at once, without faults or rate limits, every answer its label (tests of what
#: is asked and parsed, not of timing or noise).
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
    "answers": {"boolean_error": 0, "choice_error": 0, "text_error": 0, "json_error": 0, "relative_sd": 0},
}


def capture_emulators(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every emulator a run starts from now on, kept (to read what it was asked: ``engine.asked``, ``stats``)."""
    from visionbench.emulator import Emulator

    started: list = []
    enter = Emulator.__aenter__

    async def keep(self: Emulator) -> Emulator:
        started.append(self)
        return await enter(self)

    monkeypatch.setattr(Emulator, "__aenter__", keep)
    return started


async def run_emulated(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, object]:
    """Run the config at ``path`` (results in tmp_path/r, cache in tmp_path/c); its validated bundle and its one
    emulator."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    started = capture_emulators(monkeypatch)
    out = await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    [emu] = started
    return data, emu
