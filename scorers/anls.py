"""ANLS, DocVQA's Average Normalised Levenshtein Similarity: an answer scores 1 minus its normalised edit distance
to the nearest reference (the distance over the longer string's length, after case folding and collapsing runs
of whitespace), and 0 when that distance is ``threshold`` or more: a near miss counts in part, a wrong answer not
at all (Biten et al., "Scene Text Visual Question Answering", ICCV 2019; the DocVQA evaluation uses τ = 0.5)."""

from __future__ import annotations

from pydantic import Field
from rapidfuzz.distance import Levenshtein

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel
from visionbench.types import normalise_text


class AnlsParams(StrictModel):
    threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="An answer at this normalised distance or further from every reference scores 0.",
    )


def similarity(answer: str, reference: str) -> float:
    """1 - the normalised Levenshtein distance of two texts, compared case folded with runs of whitespace as one."""
    return 1.0 - Levenshtein.normalized_distance(normalise_text(answer), normalise_text(reference))


class Anls(Scorer[AnlsParams]):
    name = "anls"
    Params = AnlsParams
    answer_types = frozenset({"text", "choice"})

    def score(self, item: Scored) -> Score:
        best = max(similarity(str(item.answer), str(reference)) for reference in item.references)
        if 1.0 - best >= self.params.threshold:
            return Score(0.0, f"similarity {best:.2f}, needs over {1 - self.params.threshold:g}")
        return Score(best, None if best == 1.0 else f"similarity {best:.2f}")


@hookimpl
def register_scorers(register):
    register(Anls)
