"""Classes: a choice (or yes/no) task's accuracy, and per class precision, recall and F1, macro-F1, balanced
accuracy and the confusion matrix (rows: the reference, columns: the answer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from visionbench import hookimpl
from visionbench.results.scoring import matches
from visionbench.scorer import NoParams, Score, Scored, Scorer
from visionbench.types import choice_key


def class_name(value: Any) -> str:
    """A class as the confusion matrix names it: yes/no for booleans, a choice as the task spells it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class Classes(Scorer[NoParams]):
    name = "classes"
    answer_types = frozenset({"choice", "boolean"})

    def _type(self) -> str | None:
        return self.task.answer_type if self.task else None

    def score(self, item: Scored) -> Score:
        right = any(matches(item.answer, reference, self._type()) for reference in item.references)
        return Score(
            1.0 if right else 0.0, None if right else f"{class_name(item.answer)}, not {class_name(item.references[0])}"
        )

    def classes(self, scored: Sequence[tuple[Scored, Score]]) -> list[str]:
        """The classes, in the task's order: its choices, or no and yes; then any other seen (never for a choice)."""
        if self.task is not None and self.task.choices:
            names = list(self.task.choices)
        elif self._type() == "boolean":
            names = ["no", "yes"]
        else:
            names = []
        for item, _ in scored:
            for value in (item.answer, item.references[0]):
                if class_name(value) not in names:
                    names.append(class_name(value))
        return names

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        names = self.classes(scored)
        index = {choice_key(n): i for i, n in enumerate(names)}
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        for item, score in scored:
            # An answer that matched one of several acceptable references counts as that one.
            truth = next(
                (r for r in item.references if score.value and matches(item.answer, r, self._type())),
                item.references[0],
            )
            matrix[index[choice_key(class_name(truth))], index[choice_key(class_name(item.answer))]] += 1
        support = matrix.sum(axis=1)
        predicted = matrix.sum(axis=0)
        hits = np.diag(matrix)
        per_class: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(names):
            precision = hits[i] / predicted[i] if predicted[i] else None
            recall = hits[i] / support[i] if support[i] else None
            f1 = (
                2 * precision * recall / (precision + recall)
                if precision is not None and recall is not None and precision + recall
                else (0.0 if precision is not None and recall is not None else None)
            )
            per_class[name] = {
                "precision": _f(precision),
                "recall": _f(recall),
                "f1": _f(f1),
                "support": int(support[i]),
            }
        present = [c for c in per_class.values() if c["support"]]
        return {
            "accuracy": float(hits.sum() / matrix.sum()) if matrix.sum() else None,
            # macro over the classes that occur in the references (a class never in them has no recall)
            "macro_f1": _mean([c["f1"] if c["f1"] is not None else 0.0 for c in present]),
            "balanced_accuracy": _mean([c["recall"] for c in present]),
            "per_class": per_class,
            "confusion": {"classes": names, "matrix": matrix.tolist()},
        }


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _mean(values: list[Any]) -> float | None:
    return sum(values) / len(values) if values else None


@hookimpl
def register_scorers(register):
    register(Classes)
