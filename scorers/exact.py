"""Exact: right when the answer is one of the references, compared as the task's answer type compares them (text
and choices after normalising case, Unicode and spaces; numbers by value; JSON as JSON). With ``vqa: true``, text
is compared after the VQAv2 evaluation's answer processing (``scorers/vqa.py``: punctuation, number words as
digits, articles and contractions), as VQA benchmarks score exact match."""

from __future__ import annotations

from pydantic import Field

from visionbench import hookimpl
from visionbench.results.scoring import matches
from visionbench.scorer import Score, Scored, Scorer
from visionbench.scorers.vqa import normalise
from visionbench.spec import StrictModel
from visionbench.types import Task


class ExactParams(StrictModel):
    vqa: bool = Field(
        default=False,
        description="Compare text after the VQAv2 answer processing (`Two dogs.` is `2 dogs`); text and choice tasks.",
    )


class Exact(Scorer[ExactParams]):
    name = "exact"
    Params = ExactParams

    def check(self, task: Task) -> str | None:
        if self.params.vqa and task.answer_type not in ("text", "choice"):
            return f"normalises text with vqa: true, and this task's answer is {task.answer_type}"
        return super().check(task)

    def score(self, item: Scored) -> Score:
        if self.params.vqa:
            given = normalise(str(item.answer))
            right = any(normalise(str(reference)) == given for reference in item.references)
            return Score(1.0 if right else 0.0, None if right else f"{given!r} after VQA normalisation")
        answer_type = self.task.answer_type if self.task else None
        right = any(matches(item.answer, reference, answer_type) for reference in item.references)
        return Score(1.0 if right else 0.0)


@hookimpl
def register_scorers(register):
    register(Exact)
