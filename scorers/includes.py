"""Includes: right when a reference occurs in the answer (``Paris`` in ``The capital is Paris.``), both
normalised: Unicode NFKC, runs of whitespace as one space, and case folded unless ``case_sensitive``. For
models that answer in a sentence where the label is a word or a phrase."""

from __future__ import annotations

import unicodedata

from pydantic import Field

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel
from visionbench.types import normalise_text


class IncludesParams(StrictModel):
    case_sensitive: bool = Field(default=False, description="Match the reference's case exactly.")


class Includes(Scorer[IncludesParams]):
    name = "includes"
    Params = IncludesParams
    answer_types = frozenset({"text"})

    def _normal(self, text: object) -> str:
        if self.params.case_sensitive:
            return " ".join(unicodedata.normalize("NFKC", str(text)).split())
        return normalise_text(str(text))

    def score(self, item: Scored) -> Score:
        answer = self._normal(item.answer)
        for reference in item.references:
            wanted = self._normal(reference)
            # An empty reference is in every text: it is found only in an empty answer.
            if wanted in answer if wanted else not answer:
                return Score(1.0, None)
        if len(item.references) == 1:
            return Score(0.0, f"{_quoted(item.references[0])} not in the answer")
        return Score(0.0, f"none of the {len(item.references)} references in the answer")


def _quoted(text: object, width: int = 40) -> str:
    text = str(text)
    return repr(text if len(text) <= width else text[: width - 1] + "…")


@hookimpl
def register_scorers(register):
    register(Includes)
