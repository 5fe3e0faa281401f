"""A task's scorers applied to a cell's final answers: each item's score, and the cell's figures of each scorer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from visionbench.results.scoring import acceptable
from visionbench.scorer import Score, Scored, Scorer
from visionbench.types import Answer, ImageItem, Task

#: The scorers a task gets when its config names none, by answer type (the first is the primary one).
DEFAULT_SCORERS: dict[str, tuple[str, ...]] = {
    "integer": ("numeric",),
    "number": ("numeric",),
    "boolean": ("classes",),
    "text": ("exact",),
    "choice": ("classes",),
    "json": ("json_fields",),
}


@dataclass(frozen=True)
class TaskScorers:
    """The scorers of a task, by their key in the config (``anls``, or ``anls@0.3`` for a second ``anls`` with
    other params: see ``run/config.py``); the first is the primary one, which the report decides by."""

    task: Task
    scorers: tuple[tuple[str, Scorer], ...]

    @property
    def primary(self) -> str:
        return self.scorers[0][0]

    def scored_items(self, rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]], final: Mapping[str, Answer]) -> Iterator[tuple[Scored, bool]]:
        """Each labelled item as a scorer sees it, and whether it was answered (``rows``: id, label, fields)."""
        answer_type = self.task.answer_type
        for item_id, label, fields in rows:
            if label is None:
                continue
            answer = final.get(item_id)
            ok = answer is not None and answer.error is None and answer.value is not None
            references = tuple(acceptable(label, answer_type) or (label,))
            yield Scored(item_id, answer.value if ok else None, references, fields), ok

    def score_cell(
        self, rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]], final: Mapping[str, Answer]
    ) -> dict[str, dict[str, Any]]:
        """Each scorer's figures of a cell: ``mean`` (over labelled items; an unanswered one scores 0), ``n`` (the
        labelled items) and its ``metrics`` (over the answered ones)."""
        items = list(self.scored_items(rows, final))
        out: dict[str, dict[str, Any]] = {}
        for key, scorer in self.scorers:
            scored = [(item, scorer.score(item)) for item, ok in items if ok]
            total = sum(_checked(score, key, item).value for item, score in scored)
            out[key] = {
                "mean": total / len(items) if items else None,
                "n": len(items),
                "metrics": _finite(scorer.metrics(scored)) if scored else {},
            }
        return out

    def item_scores(
        self, rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]], final: Mapping[str, Answer]
    ) -> dict[str, dict[str, Score]]:
        """Each scorer's score of each labelled item, by key then item id (an unanswered item: 0, "no answer")."""
        items = list(self.scored_items(rows, final))
        out: dict[str, dict[str, Score]] = {}
        for key, scorer in self.scorers:
            out[key] = {
                item.item_id: _checked(scorer.score(item), key, item) if ok else Score(0.0, "no answer")
                for item, ok in items
            }
        return out


def score_rows(items: Iterable[ImageItem]) -> Iterator[tuple[str, Any, Mapping[str, Any] | None]]:
    """Each item's id, label and fields, as the scorers read them (a dataset's from its columns)."""
    identities = getattr(items, "identities", None)
    if identities is not None:
        return ((item_id, label, fields) for item_id, _, label, fields, _ in identities())
    return ((item.id, item.label, item.fields) for item in items)


def _checked(score: Score, key: str, item: Scored) -> Score:
    if not isinstance(score, Score) or not (isinstance(score.value, (int, float)) and 0.0 <= score.value <= 1.0):
        raise ValueError(f"scorer {key!r} gave item {item.item_id!r} {score!r}; a score is a Score in [0, 1]")
    return score


def _finite(value: Any) -> Any:
    """A scorer's metrics with NaN and infinities as None (a bundle holds no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


__all__ = ["DEFAULT_SCORERS", "TaskScorers", "score_rows"]
