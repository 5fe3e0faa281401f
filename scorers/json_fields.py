"""JSON fields: the share of the reference object's top-level fields answered right (a number within ``abs_tol`` or
``rel_tol`` of the reference's, if given; anything else exactly, as JSON); the cell's whole-object accuracy, each
field's accuracy, and the fields answers missed or invented."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from visionbench import hookimpl
from visionbench.results.scoring import json_equal
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel


class JsonFieldsParams(StrictModel):
    abs_tol: float = Field(default=0.0, ge=0, description="A numeric field is right when off by at most this...")
    rel_tol: float = Field(default=0.0, ge=0, description="...or by at most this share of the reference's value.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class JsonFields(Scorer[JsonFieldsParams]):
    name = "json_fields"
    Params = JsonFieldsParams
    answer_types = frozenset({"json"})

    def same(self, got: Any, want: Any) -> bool:
        """A field's answer against its reference: numbers within the tolerance, the rest as JSON."""
        if _number(got) and _number(want):
            allowed = max(self.params.abs_tol, self.params.rel_tol * abs(want))
            return abs(got - want) <= allowed
        return json_equal(got, want)

    def score(self, item: Scored) -> Score:
        [reference] = item.references[:1]
        if not isinstance(reference, dict) or not reference:
            return Score(1.0 if json_equal(item.answer, reference) else 0.0)
        answer = item.answer if isinstance(item.answer, dict) else {}
        right = sum(1 for k, v in reference.items() if k in answer and self.same(answer[k], v))
        value = right / len(reference)
        if value == 1.0:
            return Score(value)
        wrong = [k for k, v in reference.items() if k in answer and not self.same(answer[k], v)]
        missing = [k for k in reference if k not in answer]
        why = "; ".join(part for part in (_listed("wrong", wrong), _listed("missing", missing)) if part)
        return Score(value, why or None)

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        fields: dict[str, list[int]] = {}
        missing = invented = whole = 0
        for item, _ in scored:
            reference, answer = item.references[0], item.answer
            whole += json_equal(answer, reference)
            if not isinstance(reference, dict):
                continue
            got = answer if isinstance(answer, dict) else {}
            for key, value in reference.items():
                fields.setdefault(key, []).append(int(key in got and self.same(got[key], value)))
            missing += sum(1 for key in reference if key not in got)
            invented += sum(1 for key in got if key not in reference)
        return {
            "whole_object": whole / len(scored),
            "per_field": {key: sum(hits) / len(hits) for key, hits in fields.items()},
            "missing_fields": missing,
            "invented_fields": invented,
        }


def _listed(what: str, keys: list[str]) -> str:
    return f"{what}: {', '.join(keys)}" if keys else ""


@hookimpl
def register_scorers(register):
    register(JsonFields)
