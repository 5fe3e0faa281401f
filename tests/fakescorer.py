"""A scorer plugin in its own module, registered through the same hook as the built-ins (as a third party's)."""

from __future__ import annotations

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer


class FirstLetter(Scorer):
    """Right when the answer starts with the reference's first letter; half right when it has that letter."""

    name = "first_letter"

    def score(self, item: Scored) -> Score:
        answer, reference = str(item.answer), str(item.references[0])
        if answer[:1] == reference[:1]:
            return Score(1.0)
        return Score(0.5, "has the letter") if reference[:1] in answer else Score(0.0, f"starts {answer[:1]!r}")


@hookimpl
def register_scorers(register):
    register(FirstLetter)
