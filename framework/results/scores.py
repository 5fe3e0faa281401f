"""A task's scorers applied to a cell's final answers: each item's score, and the cell's figures of each scorer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from visionbench.results.scoring import acceptable
from visionbench.scorer import ModelScorer, Score, Scored, Scorer
from visionbench.types import Answer, ImageItem, Record, Task

#: A model scorer's verdicts of a cell, by its key then item id: a score, or why the judge could not give one.
Verdicts = Mapping[str, Mapping[str, Score | str]]

#: The scorers a task gets when its config names none, by answer type (the first is the primary one).
DEFAULT_SCORERS: dict[str, tuple[str, ...]] = {
    "integer": ("numeric",),
    "number": ("numeric",),
    "boolean": ("classes",),
    "text": ("exact",),
    "choice": ("classes",),
    "json": ("json_fields",),
}


@dataclass(frozen=True)
class TaskScorers:
    """The scorers of a task, by their key in the config (``anls``, or ``anls@0.3`` for a second ``anls`` with
    other params: see ``run/config.py``); the first is the primary one, which the report decides by."""

    task: Task
    scorers: tuple[tuple[str, Scorer], ...]

    @property
    def primary(self) -> str:
        return self.scorers[0][0]

    @property
    def needs_reply(self) -> bool:
        """Whether a scorer reads the raw replies (``Scorer.needs_reply``): then they are kept to be scored."""
        return any(scorer.needs_reply for _, scorer in self.scorers)

    def scored_items(
        self,
        rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]],
        final: Mapping[str, Answer],
        replies: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[Scored, bool]]:
        """Each labelled item as a scorer sees it, and whether it was answered (``rows``: id, label, fields;
        ``replies``: the raw reply behind each answer, by item id, when a scorer reads them)."""
        answer_type = self.task.answer_type
        replies = replies or {}
        for item_id, label, fields in rows:
            if label is None:
                continue
            answer = final.get(item_id)
            ok = answer is not None and answer.error is None and answer.value is not None
            references = tuple(acceptable(label, answer_type) or (label,))
            reply = replies.get(item_id) if ok else None
            yield Scored(item_id, answer.value if ok else None, references, fields, reply), ok

    @property
    def judges(self) -> tuple[tuple[str, ModelScorer], ...]:
        """The scorers that ask a model (LLM judges), by key: the run asks them (``visionbench.run.judging``)."""
        return tuple((key, scorer) for key, scorer in self.scorers if isinstance(scorer, ModelScorer))

    def score_cell(
        self,
        rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]],
        final: Mapping[str, Answer],
        verdicts: Verdicts | None = None,
        replies: Mapping[str, str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Each scorer's figures of a cell: ``mean`` (over labelled items; an unanswered one scores 0), ``n`` (the
        labelled items) and its ``metrics`` (over the answered ones).

        A model scorer's scores are its ``verdicts`` (see ``judge_verdicts``); an answered item it could not score
        is left out of its mean (``judge.errors`` counts them). Without verdicts (the judge did not run: the cell
        did not finish) model scorers have no figures."""
        items = list(self.scored_items(rows, final, replies))
        out: dict[str, dict[str, Any]] = {}
        for key, scorer in self.scorers:
            unscored = 0
            if isinstance(scorer, ModelScorer):
                if verdicts is None:
                    continue
                judged = verdicts.get(key, {})
                scored = []
                for item, ok in items:
                    verdict = judged.get(item.item_id) if ok else None
                    if isinstance(verdict, Score):
                        scored.append((item, verdict))
                    elif ok:
                        unscored += 1
            else:
                scored = [(item, scorer.score(item)) for item, ok in items if ok]
            total = sum(_checked(score, key, item).value for item, score in scored)
            counted = len(items) - unscored
            out[key] = {
                "mean": total / counted if counted else None,
                "n": len(items),
                "metrics": _finite(scorer.metrics(scored)) if scored else {},
            }
        return out

    def item_scores(
        self,
        rows: Iterable[tuple[str, Any, Mapping[str, Any] | None]],
        final: Mapping[str, Answer],
        verdicts: Verdicts | None = None,
        replies: Mapping[str, str] | None = None,
    ) -> dict[str, dict[str, Score]]:
        """Each scorer's score of each labelled item, by key then item id (an unanswered item: 0, "no answer"). A
        model scorer's are its ``verdicts``: an item it could not score is left out (its error is in ``verdicts``);
        without verdicts, model scorers are left out."""
        items = list(self.scored_items(rows, final, replies))
        out: dict[str, dict[str, Score]] = {}
        for key, scorer in self.scorers:
            if isinstance(scorer, ModelScorer):
                if verdicts is not None:
                    judged = verdicts.get(key, {})
                    mine: dict[str, Score] = {}
                    out[key] = mine
                    for item, ok in items:
                        verdict = judged.get(item.item_id) if ok else Score(0.0, "no answer")
                        if isinstance(verdict, Score):
                            mine[item.item_id] = verdict
                continue
            out[key] = {
                item.item_id: _checked(scorer.score(item), key, item) if ok else Score(0.0, "no answer")
                for item, ok in items
            }
        return out


class Replies:
    """The raw reply behind each answer of a cell, kept only for a task whose scorers read replies: each record's
    reply with its answers, then the one behind each final answer (the very answer, else the last reply that gave
    the item an answer of that value: a bundle's answers are read anew)."""

    def __init__(self) -> None:
        self._by_item: dict[str, list[tuple[Answer, str]]] = {}

    def add(self, record: Record) -> None:
        if record.raw_text is None or record.judge is not None:
            return
        for answer in record.answers:
            self._by_item.setdefault(answer.item_id, []).append((answer, record.raw_text))

    def of(self, final: Mapping[str, Answer]) -> dict[str, str]:
        out: dict[str, str] = {}
        for item_id, answer in final.items():
            kept = self._by_item.get(item_id, ())
            found = next((text for a, text in reversed(kept) if a is answer), None)
            if found is None:
                found = next((text for a, text in reversed(kept) if a.error is None and a.value == answer.value), None)
            if found is not None:
                out[item_id] = found
        return out


def judge_verdicts(records: Iterable[Record]) -> dict[str, dict[str, Score | str]]:
    """The verdicts a cell's judge records give, by scorer key then item id: the score (the record's answer's value,
    the judge's words as why), or the error that cost it; a later record of the same item wins (a resumed run's)."""
    out: dict[str, dict[str, Score | str]] = {}
    for record in records:
        if record.judge is None:
            continue
        judged = out.setdefault(record.judge["scorer"], {})
        for answer in record.answers:
            if answer.error is not None or answer.value is None:
                judged[answer.item_id] = answer.error or "no score"
            else:
                judged[answer.item_id] = Score(float(answer.value), record.judge.get("why"))
    return out


def judge_figures(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """Each model scorer's own figures of a cell, from its judge records, by scorer key: requests sent, attempts,
    items it could not score (as the latest verdicts say), tokens and cost (None when a reply had no price)."""
    out: dict[str, dict[str, Any]] = {}
    by_key: dict[str, list[Record]] = {}
    for record in records:
        if record.judge is not None:
            by_key.setdefault(record.judge["scorer"], []).append(record)
    for key, mine in by_key.items():
        sent = [r for r in mine if r.attempts > 0]
        billable = [r for r in mine if (r.attempts > 0 or r.replayed is not None) and r.error is None]
        priced = [r.cost_usd for r in mine if r.cost_usd is not None]
        verdicts = judge_verdicts(mine).get(key, {})
        out[key] = {
            "requests": len(sent),
            "replayed": sum(1 for r in mine if r.replayed is not None),
            "attempts": sum(r.attempts for r in mine),
            "errors": sum(1 for v in verdicts.values() if not isinstance(v, Score)),
            "input_tokens": _usage_sum(mine, "input_tokens"),
            "output_tokens": _usage_sum(mine, "output_tokens"),
            "cost_usd": sum(priced) if len(priced) == len(billable) else None,
        }
    return out


def _usage_sum(records: list[Record], name: str) -> int | None:
    values = [getattr(r.usage, name) for r in records if r.usage is not None and getattr(r.usage, name) is not None]
    return sum(values) if values else None


def score_rows(items: Iterable[ImageItem]) -> Iterator[tuple[str, Any, Mapping[str, Any] | None]]:
    """Each item's id, label and fields, as the scorers read them (a dataset's from its columns)."""
    identities = getattr(items, "identities", None)
    if identities is not None:
        return ((item_id, label, fields) for item_id, _, label, fields, _ in identities())
    return ((item.id, item.label, item.fields) for item in items)


def _checked(score: Score, key: str, item: Scored) -> Score:
    if not isinstance(score, Score) or not (isinstance(score.value, (int, float)) and 0.0 <= score.value <= 1.0):
        raise ValueError(f"scorer {key!r} gave item {item.item_id!r} {score!r}; a score is a Score in [0, 1]")
    return score


def _finite(value: Any) -> Any:
    """A scorer's metrics with NaN and infinities as None (a bundle holds no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


__all__ = ["DEFAULT_SCORERS", "TaskScorers", "Verdicts", "judge_figures", "judge_verdicts", "score_rows"]
