"""The base class of scorer plugins: how one answer is scored against its reference answers, and what a cell's
answers add up to (the mean score, and figures of all of them such as F1 from a confusion matrix)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel

from visionbench.spec import StrictModel
from visionbench.types import AnswerType, Task


@dataclass(frozen=True, slots=True)
class Score:
    """One item's score from one scorer: ``value`` in [0, 1] (1: right), and why, in a few words (shown per item
    in the report: ``"CER 0.12"``, ``"missing: date"``)."""

    value: float
    why: str | None = None


@dataclass(frozen=True, slots=True)
class Scored:
    """What a scorer is given of one item: its id, its row's fields, the parsed answer (``None`` when the item
    failed: it scores 0 without being asked), its reference answers (a label listing several acceptable answers
    gives them all; a json task's label is one reference however it is shaped) and, when asked for, the raw reply."""

    item_id: str
    answer: Any
    references: tuple[Any, ...]
    fields: Mapping[str, Any] | None = None
    #: The raw reply the answer was read from (a request of several items: the whole reply), for a scorer that sets
    #: ``needs_reply``; None otherwise, or when the item failed.
    reply: str | None = None


class NoParams(StrictModel):
    """Params of a scorer that takes none."""


ParamsT = TypeVar("ParamsT", bound=BaseModel)


class Scorer(ABC, Generic[ParamsT]):
    """A scorer turns an answer and its references into a score in [0, 1], and may add figures of a cell's answers
    taken together (``metrics``).

    Subclasses set ``name`` (what a config writes under ``task.scorers``), may set ``Params`` (a pydantic model of
    the scorer's options, validated from its config entry) and ``answer_types`` (the task answer types it fits;
    ``None``: any). One instance scores every cell of a run, so it keeps no state between calls.
    """

    name: ClassVar[str]
    Params: type[ParamsT] = cast("type[ParamsT]", NoParams)
    #: The answer types this scorer fits; None: any.
    answer_types: ClassVar[frozenset[AnswerType] | None] = None
    #: True: ``score`` reads ``item.reply``, the raw reply (the run then keeps the replies behind its answers until
    #: they are scored; a report or ``rescore`` reads them from the bundle's records).
    needs_reply: ClassVar[bool] = False

    def __init__(self, params: ParamsT | None = None, task: Task | None = None) -> None:
        self.params: ParamsT = params if params is not None else self.Params()
        #: The task scored (its answer type, choices, schema).
        self.task = task

    def check(self, task: Task) -> str | None:
        """Why this scorer cannot score ``task`` (an answer type it does not fit), or None."""
        if self.answer_types is not None and task.answer_type not in self.answer_types:
            fits = ", ".join(sorted(self.answer_types))
            return f"scores {fits} answers, and this task's answer is {task.answer_type}"
        return None

    @abstractmethod
    def score(self, item: Scored) -> Score:
        """The score of one answered item (``item.answer`` is not None; it has at least one reference)."""

    def metrics(self, scored: Sequence[tuple[Scored, Score]]) -> dict[str, Any]:
        """Figures of a cell's scored items taken together, beside the mean score (``{"macro_f1": 0.93}``); keys
        are plain names, values JSON (numbers, or tables such as a confusion matrix). None by default."""
        return {}


@dataclass(frozen=True)
class Judge:
    """Whom a model scorer asks, and how: an endpoint of the run (its name, as cells give ``provider``), a model, the
    model params of its requests, whether each item's images go with them (prepared as the cell prepared them), at
    most how many are in flight at once, and the longest reply."""

    provider: str
    model: str
    model_params: dict[str, Any] = field(default_factory=dict)
    images: bool = True
    max_concurrency: int = 4
    max_output_tokens: int = 1024


@dataclass(frozen=True)
class JudgePrompt:
    """What a model scorer asks about one item: the prompt, and a system prompt if any."""

    prompt: str
    system: str | None = None


class ModelScorer(Scorer[ParamsT]):
    """A scorer that asks a model for each item's score (an LLM judge). It stays free of input and output: it says
    whom to ask (``judge``), words the question about one item (``ask``) and reads the reply (``read``); the run
    sends the requests after the cell's answers are final, through its own providers and caller (limits, timeouts,
    retries), and keeps them as records of the cell marked as the judge's, apart from the cell's own figures.

    ``score`` is not called: a model scorer is scored by the run (``visionbench.run.judging``)."""

    @property
    @abstractmethod
    def judge(self) -> Judge:
        """The endpoint, model and settings of the judge's requests."""

    @abstractmethod
    def ask(self, item: Scored, question: str) -> JudgePrompt:
        """The request about one answered item; ``question`` is what the cell asked (the task's prompt, filled
        from the item's fields)."""

    @abstractmethod
    def read(self, reply: str) -> Score:
        """The score a reply gives; a ``ValueError`` when it gives none (that item's judge score is then an error)."""

    def score(self, item: Scored) -> Score:
        raise TypeError(f"scorer {self.name!r} asks a model: the run scores it (visionbench.run.judging)")


__all__ = ["Judge", "JudgePrompt", "ModelScorer", "NoParams", "Score", "Scored", "Scorer"]
