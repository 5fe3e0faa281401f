"""IoU: boxes found against the reference boxes. Each answer box is paired with at most one reference box, the
pairing of the highest total IoU (intersection over union; the Hungarian method), and a pair of IoU ``threshold``
or more is a match. An item scores the F1 of its matches (2 matches / (answer boxes + reference boxes); 1 when
both have none); the cell's metrics are the precision and recall over all boxes, their F1, and the mean IoU of
the matches.

A box is four numbers, in the ``format`` given: ``gemini``, Gemini's ``[ymin, xmin, ymax, xmax]`` on a 0-1000
grid; ``xyxy``, ``[xmin, ymin, xmax, ymax]``; ``xywh`` (COCO), ``[x, y, width, height]``; or an object holding
the four under ``box_2d`` (Gemini's detection output), ``box`` or ``bbox``, with an optional ``label``. Answer and
reference must use the same format, in the same units: IoU does not change when both are scaled, so 0-1000,
0-1 and pixel coordinates all work, but Gemini's 0-1000 answer cannot be compared with a pixel reference
without the image's size (convert the labels first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel

#: A box as (xmin, ymin, xmax, ymax) and its label (None: unlabelled).
Box = tuple[tuple[float, float, float, float], str | None]
_BOX_KEYS = ("box_2d", "box", "bbox")


class IouParams(StrictModel):
    format: Literal["gemini", "xyxy", "xywh"] = Field(
        default="gemini",
        description="gemini: [ymin, xmin, ymax, xmax] (0-1000); xyxy: [xmin, ymin, xmax, ymax]; xywh: [x, y, w, h].",
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="The IoU at which a pair of boxes is a match.")
    key: str | None = Field(
        default=None, description="The boxes are the list under this key of the answer and label (`boxes`)."
    )
    match_labels: bool = Field(default=False, description="Pair only boxes of the same label (case folded).")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes; 0 for two empty boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Iou(Scorer[IouParams]):
    name = "iou"
    Params = IouParams
    answer_types = frozenset({"json"})

    def boxes(self, value: Any) -> list[Box] | None:
        """The boxes of an answer or a label, as (xmin, ymin, xmax, ymax) and label; None when it holds none."""
        if self.params.key is not None:
            value = value.get(self.params.key) if isinstance(value, dict) else None
        if isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value):
            value = [value]  # one box
        if not isinstance(value, list):
            return None
        out = []
        for entry in value:
            label = None
            if isinstance(entry, dict):
                label = entry.get("label")
                entry = next((entry[k] for k in _BOX_KEYS if k in entry), None)
            if not (isinstance(entry, list) and len(entry) == 4 and all(_number(v) for v in entry)):
                return None
            out.append((self._corners(entry), None if label is None else str(label).casefold()))
        return out

    def _corners(self, box: list[float]) -> tuple[float, float, float, float]:
        a, b, c, d = (float(v) for v in box)
        if self.params.format == "gemini":
            a, b, c, d = b, a, d, c
        elif self.params.format == "xywh":
            c, d = a + c, b + d
        # a box given corner to corner the wrong way round is the same box
        return min(a, c), min(b, d), max(a, c), max(b, d)

    def matched(self, answer: list[Box], reference: list[Box]) -> list[float]:
        """The IoU of each matched pair: the pairing of the highest total IoU, the pairs at the threshold or over."""
        if not answer or not reference:
            return []
        table = np.array(
            [
                [iou(a, r) if not self.params.match_labels or la == lr else 0.0 for r, lr in reference]
                for a, la in answer
            ]
        )
        from scipy.optimize import linear_sum_assignment  # here: scipy.optimize takes ~0.35 s to import

        rows, cols = linear_sum_assignment(table, maximize=True)
        return [float(table[i, j]) for i, j in zip(rows, cols) if table[i, j] >= self.params.threshold]

    def counts(self, item: Scored) -> tuple[list[float], int, int] | None:
        """(IoUs of the matches, answer boxes, reference boxes) against the best reference; None when the answer
        or every reference holds no boxes."""
        answer = self.boxes(item.answer)
        if answer is None:
            return None
        labels = [boxes for reference in item.references if (boxes := self.boxes(reference)) is not None]
        found = [(self.matched(answer, boxes), len(answer), len(boxes)) for boxes in labels]
        return max(found, key=lambda c: _f1(*c)) if found else None

    def score(self, item: Scored) -> Score:
        counts = self.counts(item)
        if counts is None:
            whose = "answer" if self.boxes(item.answer) is None else "label"
            return Score(0.0, f"the {whose} holds no boxes in {self.params.format} format")
        value = _f1(*counts)
        matches, answered, wanted = counts
        why = None if value == 1.0 else f"{len(matches)} of {wanted} boxes matched, {answered} given"
        return Score(value, why)

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        found = [c for item, _ in scored if (c := self.counts(item)) is not None]
        ious = [v for matches, _, _ in found for v in matches]
        answered = sum(a for _, a, _ in found)
        wanted = sum(w for _, _, w in found)
        precision = len(ious) / answered if answered else None
        recall = len(ious) / wanted if wanted else None
        return {
            "precision": precision,
            "recall": recall,
            "f1": 2 * len(ious) / (answered + wanted) if answered + wanted else None,
            "mean_iou": sum(ious) / len(ious) if ious else None,
            "unreadable_answers": len(scored) - len(found),
        }


def _f1(matches: list[float], answered: int, wanted: int) -> float:
    return 2 * len(matches) / (answered + wanted) if answered + wanted else 1.0


@hookimpl
def register_scorers(register):
    register(Iou)
