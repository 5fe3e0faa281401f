"""LLM judge: asks a model of the run, with a rubric and the item's images, how right each answer is against its
references, on a scale of 0 to ``scale``; the score is the verdict over the scale.

The judge's requests go through the run's own machinery (its endpoint's provider, the caller's timeouts and
retries, a limit of ``max_concurrency`` in flight) after the cell's answers are final, and are kept as records of the
cell marked as the judge's: their cost and count are the judge's figures, apart from the cell's own."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field

from visionbench import hookimpl
from visionbench.scorer import Judge, JudgePrompt, ModelScorer, Score, Scored
from visionbench.spec import StrictModel

RUBRIC = (
    "You grade an answer to a question about the image or images shown, against the reference answer. Judge the "
    "meaning, not the wording: case, punctuation, units written out or abbreviated and extra polite words do not "
    "count against it; a wrong fact, a missing part or a different value does."
)


class JudgeParams(StrictModel):
    #: The endpoint the judge asks: one the run has (the matrix's, or one under ``providers:``), or a provider plugin.
    provider: str
    model: str
    #: What the judge is told to grade by; the question, the references and the answer are added after it.
    rubric: str = RUBRIC
    #: The verdict is a whole number from 0 to ``scale`` (1: yes/no); the score is verdict / scale.
    scale: int = Field(default=10, ge=1, le=100)
    #: Send the item's images with the question (prepared as the cell prepared them); false: the text alone.
    images: bool = True
    #: The judge's requests' model params (thinking level, temperature...), as a cell's ``model_params``.
    model_params: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = Field(default=4, ge=1)
    max_output_tokens: int = Field(default=1024, ge=1)


#: A verdict as a judge writes it: a number ("7", "7/10", "Score: 7.5"); the first one in the reply counts.
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_YES_NO = re.compile(r"^\W*(yes|no|true|false)\b", re.IGNORECASE)


def _shown(value: Any) -> str:
    """An answer or a reference as the judge reads it: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _clipped(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 80 else flat[:77] + "...")


class LLMJudge(ModelScorer[JudgeParams]):
    name = "llm_judge"
    Params = JudgeParams

    @property
    def judge(self) -> Judge:
        p = self.params
        return Judge(p.provider, p.model, dict(p.model_params), p.images, p.max_concurrency, p.max_output_tokens)

    def ask(self, item: Scored, question: str) -> JudgePrompt:
        scale = self.params.scale
        several = len(item.references) > 1
        references = "\n".join(f"<reference>{_shown(r)}</reference>" for r in item.references)
        prompt = (
            f"{self.params.rubric}\n\n"
            f"The question asked:\n<question>{question}</question>\n\n"
            f"{'The reference answers (any one of them is right)' if several else 'The reference answer'}:\n"
            f"{references}\n\n"
            f"The answer to grade:\n<answer>{_shown(item.answer)}</answer>\n\n"
            f"Reply with the score alone: one whole number from 0 (wrong) to {scale} (right)."
        )
        return JudgePrompt(prompt, "You are a careful, strict grader. You reply with a number and nothing else.")

    def read(self, reply: str) -> Score:
        scale = self.params.scale
        found = _NUMBER.search(reply.replace("*", ""))
        said = _YES_NO.match(reply.replace("*", "")) if scale == 1 else None
        if said is not None:  # a yes/no judge that said yes or no
            verdict = 1.0 if said.group(1).lower() in ("yes", "true") else 0.0
        elif found is not None:
            verdict = float(found.group())
        else:
            raise ValueError(f"no score in the judge's reply {_clipped(reply)}")
        if not 0 <= verdict <= scale:
            raise ValueError(f"the judge's score {verdict:g} is not from 0 to {scale}, in {_clipped(reply)}")
        return Score(verdict / scale, f"judge {verdict:g}/{scale}")


@hookimpl
def register_scorers(register):
    register(LLMJudge)
