"""Character and word error rates (CER, WER): the edits (insertions, deletions, substitutions) that turn the
answer into the reference, over the reference's length in characters or words, against the nearest reference.
An item scores max(0, 1 - rate); the cell's metrics are the mean rate (``cer``, ``wer``) and the corpus rate
(``corpus_cer``, ``corpus_wer``: all edits over all references' length, so long texts weigh more)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field
from rapidfuzz.distance import Levenshtein

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel
from visionbench.types import normalise_text


class ErrorRateParams(StrictModel):
    case_sensitive: bool = Field(
        default=False, description="Count a change of case as an error (runs of whitespace are always one space)."
    )


class _ErrorRate(Scorer[ErrorRateParams]):
    Params = ErrorRateParams
    answer_types = frozenset({"text"})
    #: What is counted: "characters" or "words".
    unit: ClassVar[str]

    def _units(self, text: Any) -> str | list[str]:
        if self.params.case_sensitive:
            text = " ".join(unicodedata.normalize("NFKC", str(text)).split())
        else:
            text = normalise_text(str(text))
        return text.split() if self.unit == "words" else text

    def edits(self, item: Scored) -> tuple[int, int]:
        """(edits, reference length) against the reference of the lowest rate; an empty reference has rate 0
        when the answer is empty too, else 1."""
        answer = self._units(item.answer)
        pairs = []
        for reference in item.references:
            units = self._units(reference)
            pairs.append((Levenshtein.distance(answer, units), len(units)))
        return min(pairs, key=lambda p: _rate(*p))

    def score(self, item: Scored) -> Score:
        rate = _rate(*self.edits(item))
        return Score(max(0.0, 1.0 - rate), None if rate == 0 else f"{self.name.upper()} {rate:.2f}")

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        counts = [self.edits(item) for item, _ in scored]
        edits, length = sum(e for e, _ in counts), sum(n for _, n in counts)
        return {
            self.name: sum(_rate(*c) for c in counts) / len(counts),
            f"corpus_{self.name}": edits / length if length else None,
        }


def _rate(edits: int, length: int) -> float:
    return edits / length if length else float(edits > 0)


class Cer(_ErrorRate):
    name = "cer"
    unit = "characters"


class Wer(_ErrorRate):
    name = "wer"
    unit = "words"


@hookimpl
def register_scorers(register):
    register(Cer)
    register(Wer)
