"""Regex: right when a Python regular expression matches the answer text (anywhere in it, or the whole of it
with ``fullmatch``). The references are ignored unless the pattern holds ``{reference}``: each reference,
escaped (matched literally), is put in its place, and the answer is right when any of the patterns so made
matches. ``pattern: '^\\s*{reference}\\s*\\.?$'`` accepts the reference with a trailing full stop;
``pattern: '\\b\\d{4}-\\d{2}-\\d{2}\\b'`` checks the answer holds an ISO date, whatever the label."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from visionbench import hookimpl
from visionbench.scorer import Score, Scored, Scorer
from visionbench.spec import StrictModel

#: Where a reference goes in the pattern.
PLACEHOLDER = "{reference}"


class RegexParams(StrictModel):
    pattern: str = Field(
        description="A Python regular expression; `{reference}` in it stands for each reference, matched literally."
    )
    fullmatch: bool = Field(default=False, description="The pattern must match the whole answer, not a part of it.")
    ignore_case: bool = Field(default=False, description="Match regardless of case (re.IGNORECASE).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern.replace(PLACEHOLDER, "x"))
        except re.error as err:
            raise ValueError(f"not a valid regular expression: {err}") from None
        return pattern


class Regex(Scorer[RegexParams]):
    name = "regex"
    Params = RegexParams
    answer_types = frozenset({"text"})

    def patterns(self, item: Scored) -> list[re.Pattern[str]]:
        """The patterns an answer is matched against: the one pattern, or one per reference."""
        flags = re.IGNORECASE if self.params.ignore_case else 0
        pattern = self.params.pattern
        if PLACEHOLDER not in pattern:
            return [re.compile(pattern, flags)]
        return [re.compile(pattern.replace(PLACEHOLDER, re.escape(str(r))), flags) for r in item.references]

    def score(self, item: Scored) -> Score:
        answer = str(item.answer)
        for pattern in self.patterns(item):
            if (pattern.fullmatch(answer) if self.params.fullmatch else pattern.search(answer)) is not None:
                return Score(1.0)
        return Score(0.0, "the pattern does not match the whole answer" if self.params.fullmatch else "no match")


@hookimpl
def register_scorers(register):
    register(Regex)
