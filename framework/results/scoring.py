"""Per-cell figures: time, latency percentiles, throughput, tokens, cost and accuracy against the labels."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionbench.types import Answer, ImageItem, Record, choice_key, normalise_text


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100), numpy's default; ``None`` for no values.

    An ``array("d")`` is read in place: no Python float per value, however many there are."""
    if not len(values):
        return None
    data = np.frombuffer(values, dtype=np.float64) if isinstance(values, array) else np.asarray(values, float)
    return float(np.percentile(data, q))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ids_and_labels(items: Iterable[ImageItem]) -> Iterable[tuple[str, Any]]:
    """The items' ids and labels; a dataset's ``Items`` gives them from its columns, making no ``ImageItem``."""
    columns = getattr(items, "ids_and_labels", None)
    return columns() if columns is not None else ((item.id, item.label) for item in items)


def json_equal(a: Any, b: Any) -> bool:
    """Two JSON values alike: objects by their keys whatever the order, numbers by value (2 is 2.0), a boolean
    never a number, strings exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def acceptable(label: Any, answer_type: str | None) -> list[Any] | None:
    """The acceptable answers of a label that lists several (a list label of any task but a json one), else None."""
    return label if isinstance(label, list) and answer_type not in (None, "json") else None


def abs_error(value: Any, label: Any, answer_type: str | None = None) -> float | None:
    """How far a numeric answer is from its label (the nearest of several acceptable ones); None if either is not
    a number."""
    labels = acceptable(label, answer_type) or [label]
    errors = [abs(float(value) - float(x)) for x in labels if _is_number(value) and _is_number(x)]
    return min(errors) if errors else None


def matches(value: Any, label: Any, answer_type: str | None = None) -> bool:
    """Whether an answer is exactly right, by its task's answer type: numbers and booleans by value; text
    normalised (case, Unicode form, runs of whitespace); a choice by its normalised key; JSON as JSON (key order
    and formatting irrelevant); a label listing several acceptable answers, by any of them. Without a type (an
    old bundle), plain equality."""
    if (several := acceptable(label, answer_type)) is not None:
        return any(matches(value, one, answer_type) for one in several)
    if answer_type == "text" and isinstance(value, str) and isinstance(label, str):
        return normalise_text(value) == normalise_text(label)
    if answer_type == "choice" and isinstance(value, str) and isinstance(label, str):
        return choice_key(value) == choice_key(label)
    if answer_type == "json":
        return json_equal(value, label)
    return bool(value == label)


def field_score(value: Any, label: Any) -> float:
    """The share of the label's fields (top-level keys) the answer has right; for a label that is not an
    object, 1.0 when the whole answer is right, else 0.0. A label of no fields is right only when matched whole."""
    if isinstance(label, dict) and label:
        if not isinstance(value, dict):
            return 0.0
        return sum(1 for k, v in label.items() if k in value and json_equal(value[k], v)) / len(label)
    return 1.0 if json_equal(value, label) else 0.0


def task_answer_type(bundle: Mapping[str, Any]) -> str | None:
    """A bundle's task answer type (its config's ``task.answer``; None when it does not say)."""
    task = (bundle.get("config") or {}).get("task") or {}
    return task.get("answer") if isinstance(task, Mapping) else None


def accuracy(
    items: Iterable[ImageItem], final: Mapping[str, Answer], answer_type: str | None = None
) -> dict[str, Any]:
    """MAE and exact-match accuracy over labelled items; unanswered items count as wrong and are excluded from MAE.
    For a ``json`` task also ``field_match``: the mean share of each label's fields answered right (unanswered
    items score 0); ``exact_match`` is then the share of whole objects right.

    One pass, nothing per item kept."""
    labelled = answered = exact = numeric = 0
    errors = fields = 0.0
    for item_id, label in _ids_and_labels(items):
        if label is None:
            continue
        labelled += 1
        answer = final.get(item_id)
        if answer is None or answer.error is not None:
            continue
        answered += 1
        exact += matches(answer.value, label, answer_type)
        if answer_type == "json":
            fields += field_score(answer.value, label)
        elif (error := abs_error(answer.value, label, answer_type)) is not None:
            numeric += 1
            errors += error
    out = {
        "labelled": labelled,
        "answered": answered,
        "exact_match": exact / labelled if labelled else None,
        "mae": errors / numeric if numeric else None,
    }
    if answer_type == "json":
        out["field_match"] = fields / labelled if labelled else None
    return out


_USAGE_SUMS = ("input_tokens", "output_tokens", "thinking_tokens")


@dataclass
class RecordStats:
    """What a cell run's summary needs from its records, gathered one record at a time (none is kept).

    Per request sent only its latency, queue and service times (and, when streamed, time to first token and
    output tokens/s): 8 bytes each in an array; everything else is counts and sums.
    """

    records: int = 0
    requests: int = 0  # records with at least one attempt
    attempts: int = 0
    latency: array = field(default_factory=lambda: array("d"))
    queue: array = field(default_factory=lambda: array("d"))
    service: array = field(default_factory=lambda: array("d"))
    ttft: array = field(default_factory=lambda: array("d"))
    rates: array = field(default_factory=lambda: array("d"))
    cost: float = 0
    priced: int = 0  # records with a cost
    thinking_cost: float = 0.0  # of ``cost``, what thinking tokens cost
    billable: int = 0  # records sent (or replayed) and answered without error: each should have a cost
    replayed: int = 0  # records answered from an earlier run (``run --replay``), not sent
    replayed_cost: float = 0.0  # what those cost the run they came from
    #: Totals of each usage field; None while no request has reported it (unknown is not zero).
    usage: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(_USAGE_SUMS))

    def add(self, record: Record) -> None:
        """Take one record into account."""
        self.records += 1
        self.attempts += record.attempts
        if record.attempts > 0:
            latency = record.latency_s
            self.requests += 1
            self.latency.append(latency)
            self.queue.append(record.queue_s)
            self.service.append(max(0.0, latency - record.backoff_s))  # the first slot's wait is before start_s
            if record.ttft_s is not None:
                self.ttft.append(record.ttft_s)
            if record.output_tokens_per_s is not None:
                self.rates.append(record.output_tokens_per_s)
            if record.error is None:
                self.billable += 1
        elif record.replayed is not None:  # answered from an earlier run: its cost counts, no time of its own
            self.replayed += 1
            self.billable += record.error is None
            self.replayed_cost += record.cost_usd or 0.0
        if record.cost_usd is not None:
            self.cost += record.cost_usd
            self.thinking_cost += record.thinking_cost_usd or 0.0
            self.priced += 1
        if record.usage is not None:
            for name in _USAGE_SUMS:
                value = getattr(record.usage, name)
                if value is not None:
                    total = self.usage[name]
                    self.usage[name] = value if total is None else total + value


def summarize_cell(
    items: Sequence[ImageItem],
    stats: RecordStats,
    final: Mapping[str, Answer],
    wall_s: float,
    answer_type: str | None = None,
) -> dict[str, Any]:
    """The figures of one cell run (one repeat), from its records' ``stats``."""
    errors = sum(1 for i, _ in _ids_and_labels(items) if i not in final or final[i].error is not None)
    # Unknown if any successful request has no price: a partial sum would understate the bill.
    cost = stats.cost if stats.priced and stats.priced == stats.billable else None
    return {
        "items": len(items),
        "requests": stats.requests,
        "attempts": stats.attempts,
        "errors": errors,
        "wall_s": wall_s,
        "latency_p50_s": percentile(stats.latency, 50),
        "latency_p90_s": percentile(stats.latency, 90),
        "latency_p95_s": percentile(stats.latency, 95),
        "latency_p99_s": percentile(stats.latency, 99),
        "queue_p50_s": percentile(stats.queue, 50),
        "service_p50_s": percentile(stats.service, 50),
        # Streamed cells only (None otherwise): time to first token and output tokens per second after it.
        "ttft_p50_s": percentile(stats.ttft, 50),
        "ttft_p95_s": percentile(stats.ttft, 95),
        "output_tokens_per_s_p50": percentile(stats.rates, 50),
        # a run that replayed answers did not send for them: its pace says nothing of the service's
        "images_per_s": len(items) / wall_s if wall_s > 0 and not stats.replayed else None,
        "replayed": stats.replayed,
        "replayed_cost_usd": stats.replayed_cost,
        **{name: stats.usage[name] for name in _USAGE_SUMS},
        "cost_usd": cost,
        "thinking_cost_usd": stats.thinking_cost if cost is not None else None,
        "cost_per_1k_images_usd": cost * 1000 / len(items) if cost is not None and items else None,
        **accuracy(items, final, answer_type),
    }
