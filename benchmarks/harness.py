"""Shared pieces of the benchmarks: a synthetic labelled dataset, an emulator in its own process, configs."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

EMULATOR_KEY_ENV = "VISIONBENCH_BENCH_KEY"
#: The labelled eval photos are not in the repository (their licences forbid redistribution): benchmarks that use
#: them take --eval-images DIR, else this environment variable, else the folder beside the repository.
EVAL_IMAGES_ENV = "VISIONBENCH_EVAL_IMAGES"
EVAL_IMAGES_BESIDE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval-images"


def add_eval_images_option(parser: argparse.ArgumentParser) -> None:
    """``--eval-images DIR``: the eval photos' folder (default: $VISIONBENCH_EVAL_IMAGES, else ../shared/...)."""
    parser.add_argument(
        "--eval-images",
        type=Path,
        metavar="DIR",
        default=Path(os.environ.get(EVAL_IMAGES_ENV) or EVAL_IMAGES_BESIDE),
        help=f"folder of the labelled eval photos, which are not shipped (default: ${EVAL_IMAGES_ENV}, "
        f"else {EVAL_IMAGES_BESIDE})",
    )


def eval_photos(folder: Path, pattern: str = "*.jpg") -> list[Path]:
    """The eval photos in ``folder``; when there are none, a note on stderr saying how to point at them."""
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not found:
        print(
            f"note: no eval photos at {folder} (they are not shipped with visionbench); "
            f"give their folder with --eval-images DIR or {EVAL_IMAGES_ENV}=DIR",
            file=sys.stderr,
        )
    return found


def make_dataset(folder: Path, n: int, size: int = 96, seed: int = 0) -> Path:
    """``n`` small distinct JPEGs (random blocks, so the emulator's perceptual hash tells them apart) + labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(n):
        blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST).save(
            folder / f"img{i:05d}.jpg", quality=90
        )
        labels[f"img{i:05d}.jpg"] = int(rng.integers(0, 30))
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def write_profiles(path: Path, *, base_s: float, capacity: int = 10_000, time_scale: float = 1.0) -> Path:
    """One fixed-latency, fault-free, exact-answer profile for every model."""
    profile = {
        "latency": {
            "base_s": base_s,
            "per_input_token_s": 0,
            "output_tokens_per_s": 1e9,
            "thinking_tokens": 0,
            "jitter": 0,
        },
        "capacity": capacity,
        "rate_limit": {"requests_per_minute": None},
        "faults": {
            "http_500": 0,
            "http_503": 0,
            "http_529": 0,
            "malformed_body": 0,
            "drop_connection": 0,
            "slow": {"probability": 0, "extra_s": 0},
        },
        "answers": {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0},
    }
    path.write_text(yaml.safe_dump({"seed": 0, "time_scale": time_scale, "defaults": profile, "models": {"*": {}}}))
    return path


def _drain(stream) -> None:
    for _ in stream:  # line by line, so nothing piles up in this process either
        pass


@contextmanager
def emulator_process(dataset: Path, profiles: Path) -> Iterator[str]:
    """``visionbench emulate`` in a process of its own (so it does not share the measured process's CPU)."""
    cmd = [
        sys.executable,
        "-m",
        "visionbench.cli",
        "emulate",
        "--dataset",
        str(dataset),
        "--profiles",
        str(profiles),
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                break
        else:
            raise RuntimeError("the emulator did not start")
        # Keep draining its output: a full pipe would block a chatty emulator mid-run (and skew a benchmark).
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        os.environ.setdefault(EMULATOR_KEY_ENV, "bench-key")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_config(
    path: Path,
    dataset: Path,
    base_url: str,
    strategies: list,
    *,
    provider: str = "gemini",
    model: str = "gemini-3.5-flash",
    timeout_s: float = 120,
    limit: int | None = None,
    include: list[str] | None = None,
    label_field: str | None = None,
    max_side: int = 96,
) -> Path:
    spec = {
        "path": str(dataset),
        "labels": "labels.json",
        "label_field": label_field,
        "include": include,
        "limit": limit,
    }
    config = {
        "name": path.stem,
        "dataset": {k: v for k, v in spec.items() if v is not None},
        "task": {"prompt": "How many people are in this image? Answer with a single integer.", "answer": "integer"},
        "preprocessing": {"max_side": max_side},
        "retry": {"max_attempts": 1, "timeout_s": timeout_s},
        "providers": {provider: {"base_url": base_url, "api_key_env": EMULATOR_KEY_ENV}},
        "matrix": [{"provider": provider, "models": [model], "strategies": strategies}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
