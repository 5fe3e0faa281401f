"""Recognise incoming (resized, re-encoded) images as dataset images with a perceptual hash.

Each image is reduced to a 16x16 *difference hash* (grayscale, box-filtered to 17x16, one bit per horizontal
neighbour pair, set when the right pixel is darker by more than a small dead zone so flat images hash stably)
plus a 4x4 colour thumbnail and the aspect ratio. An incoming image matches the dataset image at the smallest
Hamming distance; near-ties (within ``TIE_SLACK`` bits) are broken by colour and aspect ratio. Beyond
``max_distance`` bits (default 40 of 256) the image is *unknown*.

Measured on shared/data/eval-images: the same image downscaled to 128..768 px and JPEG-recompressed at quality 40..85
stays within 26 bits; the closest pair of different images is 61 bits apart.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionbench.data.dataset import folder_images, read_labels
from visionbench.emulator.replies import label_kind

log = logging.getLogger(__name__)

HASH_SIDE = 16
DEAD_ZONE = 2
TIE_SLACK = 4


class ImageError(ValueError):
    """The bytes are not a decodable image (or not base64)."""


@dataclass(frozen=True)
class Fingerprint:
    """What matching compares: dHash bits, a tiny colour thumbnail, the aspect ratio."""

    bits: np.ndarray  # bool, HASH_SIDE * HASH_SIDE
    color: np.ndarray  # float32, 4*4*3 in 0..1
    aspect: float


@dataclass(frozen=True)
class ImageInfo:
    """An incoming image after decoding."""

    width: int
    height: int
    fingerprint: Fingerprint
    rgb: Any = None  # np.ndarray (H, W, 3) uint8, kept only when the detector needs it


@dataclass(frozen=True)
class Match:
    """The dataset image an incoming image was recognised as (``key`` None: unknown)."""

    key: str | None
    #: The image's label as the labels file gives it: a number, a bool, a string, an object or a list.
    label: Any
    distance: int
    #: How many images the item it is the first of has (a rows manifest's item of several images; else 1).
    images: int = 1


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1).view(np.uint64)


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, with or without padding."""
    cleaned = "".join(data.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"image data is not valid base64: {exc}") from None


def fingerprint(image: Any) -> Fingerprint:
    """Fingerprint a Pillow image."""
    from PIL import Image

    gray = np.asarray(image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.BOX), dtype=np.int16)
    bits = ((gray[:, :-1] - gray[:, 1:]) > DEAD_ZONE).ravel()
    color = np.asarray(image.convert("RGB").resize((4, 4), Image.BOX), dtype=np.float32).ravel() / 255.0
    return Fingerprint(bits=bits, color=color, aspect=image.width / max(1, image.height))


def analyse(data: bytes, *, keep_pixels: bool = False) -> ImageInfo:
    """Decode image bytes (EXIF orientation applied) into size and fingerprint."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    rgb = np.asarray(im) if keep_pixels else None
    return ImageInfo(width=im.width, height=im.height, fingerprint=fingerprint(im), rgb=rgb)


def numeric_labels(path: Path, field: str | None) -> dict[str, float]:
    """The labels file's numeric answers (other labels are skipped)."""
    return {
        name: float(value)
        for name, value in read_labels(path, field).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def any_labels(path: Path, field: str | None) -> dict[str, Any]:
    """The labels file's answers of any JSON type (numbers as floats, as counts always were; an object without
    ``field`` is the label itself, a json task's); nulls are skipped."""
    return {
        name: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        for name, value in read_labels(path, field, objects=True).items()
        if value is not None
    }


class DatasetIndex:
    """Fingerprints of the dataset's images, with their labels."""

    def __init__(
        self,
        keys: list[str],
        labels: list[Any],
        prints: list[Fingerprint],
        prompts: list[str | None] | None = None,
        images: list[int] | None = None,
    ) -> None:
        self.keys = keys
        self.labels = labels
        #: Each entry's own prompt, where rows ask different questions of one image (None: any request).
        self.prompts: list[str | None] = prompts if prompts is not None else [None] * len(keys)
        #: Each entry's number of images (an item of several is known by its first).
        self.images: list[int] = images if images is not None else [1] * len(keys)
        #: The distinct string labels, in order: what a choice is confused with when the request offers no set.
        self.choices: list[str] = sorted({v for v in labels if isinstance(v, str)})
        bits = np.stack([p.bits for p in prints]) if prints else np.zeros((0, HASH_SIDE * HASH_SIDE), bool)
        # Packed into 64-bit words: a popcount of XORs instead of comparing 256 bools per image.
        self._packed = _pack(bits)
        self._color = np.stack([p.color for p in prints]) if prints else np.zeros((0, 48), np.float32)
        self._aspect = np.array([p.aspect for p in prints], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def build(
        cls, folder: str | Path, labels_file: str | None = "labels.json", label_field: str | None = "person_count"
    ) -> DatasetIndex:
        """Fingerprint the labelled images of ``folder`` (every image when there is no labels file)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"emulator dataset {folder} is not a folder")
        labels: dict[str, Any] = {}
        if labels_file:
            lpath = Path(labels_file) if Path(labels_file).is_absolute() else folder / labels_file
            if not lpath.is_file():
                raise ValueError(f"emulator labels file {lpath} not found")
            labels = any_labels(lpath, label_field)
            names = sorted(labels)
        else:
            names = sorted(folder_images(folder))
        return cls.from_images((name, folder / name, labels.get(name)) for name in names)

    @classmethod
    def from_images(cls, entries: Iterable[tuple[Any, ...]]) -> DatasetIndex:
        """Fingerprint these images (key, path, label[, prompt[, images]]): a folder's, or a rows manifest's items
        with each row's answer and, when the rows ask different questions, its prompt (a run's emulator is given the
        run's items; an item of several images by its first, with its number of images)."""
        from PIL import Image, ImageOps

        keys, values, prints, prompts, counts = [], [], [], [], []
        for name, path, label, *more in entries:
            if not path.is_file():
                log.warning("emulator: labelled image %s is missing; skipped", path)
                continue
            try:
                with Image.open(path) as im:
                    im.load()
                    prints.append(fingerprint(ImageOps.exif_transpose(im).convert("RGB")))
            except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for bad files
                log.warning("emulator: cannot read %s (%s); skipped", path, exc)
                continue
            keys.append(name)
            values.append(label)
            prompts.append(more[0] if more else None)
            counts.append(more[1] if len(more) > 1 else 1)
        return cls(keys, values, prints, prompts, counts)

    def kind(self) -> str | None:
        """The dataset's answer kind by its labels' JSON type (see ``replies.label_kind``), when they agree."""
        kinds = {label_kind(v) for v in self.labels if v is not None}
        return kinds.pop() if len(kinds) == 1 else None

    def match(self, fp: Fingerprint, max_distance: int, text: str = "", images: int | None = None) -> Match:
        """The nearest dataset image, or an unknown match beyond ``max_distance``. Among near ties (one image
        under several rows), those whose own prompt is in the request's ``text`` (the longest) come first, then
        those of ``images`` images (the item being asked about has that many)."""
        if not self.keys:
            return Match(None, None, HASH_SIDE * HASH_SIDE)
        dist = np.bitwise_count(self._packed ^ _pack(fp.bits[None, :])).sum(axis=1)
        best = int(dist.min())
        if best > max_distance:
            return Match(None, None, best)
        near = np.flatnonzero(dist <= best + TIE_SLACK)
        if len(near) > 1 and text:
            asked = [i for i in near if (p := self.prompts[i]) is not None and p in text]
            if asked:
                longest = max(len(self.prompts[i] or "") for i in asked)
                near = np.array([i for i in asked if len(self.prompts[i] or "") == longest])
        if len(near) > 1 and images is not None and (sized := [i for i in near if self.images[i] == images]):
            near = np.array(sized)
        if len(near) > 1:
            color = np.sqrt(np.mean((self._color[near] - fp.color) ** 2, axis=1))
            aspect = np.abs(np.log(self._aspect[near] / max(fp.aspect, 1e-6)))
            score = color + aspect + (dist[near] - best) * 0.01
            i = int(near[int(np.argmin(score))])
        else:
            i = int(near[0])
        return Match(self.keys[i], self.labels[i], int(dist[i]), self.images[i])
