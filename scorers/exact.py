"""Exact: right when the answer is one of the references, compared as the task's answer type compares them (text
and choices after normalising case, Unicode and spaces; numbers by value; JSON as JSON)."""

from __future__ import annotations

from visionbench import hookimpl
from visionbench.results.scoring import matches
from visionbench.scorer import NoParams, Score, Scored, Scorer


class Exact(Scorer[NoParams]):
    name = "exact"

    def score(self, item: Scored) -> Score:
        answer_type = self.task.answer_type if self.task else None
        right = any(matches(item.answer, reference, answer_type) for reference in item.references)
        return Score(1.0 if right else 0.0)


@hookimpl
def register_scorers(register):
    register(Exact)
