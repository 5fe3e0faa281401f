"""Numeric: right within a tolerance of the nearest reference; the cell's mean absolute, squared and relative error.

``relaxed`` is ChartQA's relaxed accuracy: within 5% of the reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel


class NumericParams(StrictModel):
    abs_tol: float = Field(default=0.0, ge=0, description="Right when off by at most this much...")
    rel_tol: float = Field(default=0.0, ge=0, description="...or by at most this share of the reference.")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def nearest(answer: Any, references: Sequence[Any]) -> tuple[float, float] | None:
    """(error, reference) of the reference nearest to a numeric answer; None when either is not a number."""
    value = _number(answer)
    pairs = [(abs(value - ref), ref) for r in references if value is not None and (ref := _number(r)) is not None]
    return min(pairs) if pairs else None


class Numeric(Scorer[NumericParams]):
    name = "numeric"
    Params = NumericParams
    answer_types = frozenset({"integer", "number"})

    def score(self, item: Scored) -> Score:
        found = nearest(item.answer, item.references)
        if found is None:
            return Score(0.0, "not a number")
        error, reference = found
        allowed = max(self.params.abs_tol, self.params.rel_tol * abs(reference))
        return Score(1.0 if error <= allowed else 0.0, None if error == 0 else f"off by {error:g}")

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        pairs = [found for item, _ in scored if (found := nearest(item.answer, item.references)) is not None]
        if not pairs:
            return {}
        errors = [error for error, _ in pairs]
        relative = [error / abs(ref) for error, ref in pairs if ref != 0]
        return {
            "mae": sum(errors) / len(errors),
            "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "mean_relative_error": sum(relative) / len(relative) if relative else None,
        }


class RelaxedParams(NumericParams):
    rel_tol: float = Field(default=0.05, ge=0, description="ChartQA's relaxed accuracy: within 5%.")


class Relaxed(Numeric):
    name = "relaxed"
    Params = RelaxedParams


@hookimpl
def register_scorers(register):
    register(Numeric)
    register(Relaxed)
