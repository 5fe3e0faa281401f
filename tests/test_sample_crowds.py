"""The shipped crowd scenes (framework/sample_crowds): labelled, small, spanning the adaptive threshold, and each one
told apart from the others by the emulator's perceptual hash, even resized and re-encoded."""

from __future__ import annotations

import io
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visionbench
from visionbench.emulator.matching import DatasetIndex, analyse, fingerprint

CROWDS = Path(visionbench.__file__).parent / "sample_crowds"
LABELS = json.loads((CROWDS / "labels.json").read_text())


def test_crowd_set_is_labelled_small_and_spans_the_adaptive_threshold() -> None:
    files = sorted(p.name for p in CROWDS.glob("*.jpg"))
    assert files == sorted(LABELS)
    assert 15 <= len(files) <= 24
    assert sum((CROWDS / f).stat().st_size for f in files) < 2_500_000
    counts = sorted(label["person_count"] for label in LABELS.values())
    assert counts[0] == 0 and counts[-1] >= 300
    assert sum(c < 20 for c in counts) >= 5 and sum(c >= 20 for c in counts) >= 5
    for label in LABELS.values():
        assert "public domain" in label["license"] and "seed" in label["source"]


@pytest.fixture(scope="module")
def index() -> DatasetIndex:
    return DatasetIndex.build(CROWDS, "labels.json", "person_count")


def test_no_two_scenes_are_near_in_the_perceptual_hash(index: DatasetIndex) -> None:
    """Every pair is far beyond the matcher's 40-bit limit (66 bits apart at the closest when this was written)."""
    assert len(index) == len(LABELS)
    bits = {}
    for key in index.keys:
        with Image.open(CROWDS / key) as im:
            bits[key] = fingerprint(im.convert("RGB")).bits
    closest = min(int(np.sum(bits[a] != bits[b])) for a, b in combinations(bits, 2))
    assert closest > 55


def _jpeg(im: Image.Image, side: int | None = None, quality: int = 95) -> bytes:
    im = im.convert("RGB")
    if side:
        im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize(("side", "quality"), [(128, 40), (384, 60), (768, 85)])
def test_each_scene_resized_and_recompressed_is_recognised_with_its_count(
    index: DatasetIndex, side: int, quality: int
) -> None:
    for key in index.keys:
        with Image.open(CROWDS / key) as im:
            match = index.match(analyse(_jpeg(im, side, quality)).fingerprint, 40)
        assert match.key == key, (key, side, quality, match)
        assert match.label == LABELS[key]["person_count"]
