"""JSON fields: the share of the reference object's top-level fields answered right; the cell's whole-object
accuracy, each field's accuracy, and the fields answers missed or invented."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visionbench import hookimpl
from visionbench.results.scoring import field_score, json_equal
from visionbench.scorer import NoParams, Score, Scored, Scorer


class JsonFields(Scorer[NoParams]):
    name = "json_fields"
    answer_types = frozenset({"json"})

    def score(self, item: Scored) -> Score:
        [reference] = item.references[:1]
        value = field_score(item.answer, reference)
        if value == 1.0 or not isinstance(reference, dict):
            return Score(value)
        answer = item.answer if isinstance(item.answer, dict) else {}
        wrong = [k for k, v in reference.items() if k in answer and not json_equal(answer[k], v)]
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
                fields.setdefault(key, []).append(int(key in got and json_equal(got[key], value)))
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
