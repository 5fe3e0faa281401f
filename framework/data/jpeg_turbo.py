"""The fast path for JPEG photos: libjpeg-turbo (simplejpeg) decoding at a DCT-domain scale, area resize.

libjpeg-turbo can decode at n/8 of the size (n = 1..16) for little more than the cost of the coefficients it
reads, so a 12 MP photo wanted at 1536 px is decoded at 3/8 instead of in full. Used only where it gives what
the Pillow path gives (8-bit RGB or greyscale JPEGs); anything else, or any error, returns None and the Pillow
path takes over (CMYK, odd headers, truncated or corrupt data, which it turns into the right item error).
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: EXIF orientation -> the transpose that makes the image upright (as ``ImageOps.exif_transpose`` does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

try:
    import simplejpeg
except ImportError:  # pragma: no cover - a pinned dependency; without it the Pillow path does everything
    simplejpeg = None


def available() -> bool:
    return simplejpeg is not None


def orientation(img: Image.Image) -> int:
    """The header's EXIF orientation (1 when absent or unreadable, as the Pillow path treats it)."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - orientation is best-effort metadata
        return 1
    return value if value in _UPRIGHT else 1


def decode(data: bytes, target: tuple[int, int] | None) -> np.ndarray | None:
    """RGB pixels, decoded at the smallest n/8 scale still at least ``target`` (None: full size), or None."""
    if simplejpeg is None:
        return None
    width, height = target if target is not None else (0, 0)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=width, min_height=height)
    except Exception:  # noqa: BLE001 - e.g. CMYK, truncated or corrupt: the Pillow path decides
        log.debug("libjpeg-turbo could not decode; using Pillow", exc_info=True)
        return None


def resize(pixels: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Area interpolation to ``size`` (width, height); as it is when None or already that size."""
    if size is None or (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    import cv2  # installed with the local detector (deface)

    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def upright(pixels: np.ndarray, orient: int) -> Image.Image:
    """The pixels as a Pillow image, turned upright for ``orient`` (after resizing: fewer pixels to move)."""
    img = Image.fromarray(pixels)
    return img.transpose(_UPRIGHT[orient]) if orient in _UPRIGHT else img
