"""Per-cell figures: time, latency percentiles, throughput, tokens, cost and accuracy against the labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from visionbench.types import Answer, ImageItem, Record


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100), as numpy's default; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _sum_usage(records: Sequence[Record], field: str) -> int | None:
    """Total of a usage field; ``None`` when no request reported it (unknown is not zero)."""
    values = [getattr(r.usage, field) for r in records if r.usage is not None and getattr(r.usage, field) is not None]
    return sum(values) if values else None


def accuracy(items: Sequence[ImageItem], final: Mapping[str, Answer]) -> dict[str, Any]:
    """MAE and exact-match accuracy over labelled items; unanswered items count as wrong and are excluded from MAE."""
    labelled = [item for item in items if item.label is not None]
    answered = [(item, final[item.id].value) for item in labelled if item.id in final and final[item.id].error is None]
    numeric = [
        (float(value), float(item.label))
        for item, value in answered
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(item.label, (int, float))
    ]
    exact = sum(1 for item, value in answered if value == item.label)
    return {
        "labelled": len(labelled),
        "answered": len(answered),
        "exact_match": exact / len(labelled) if labelled else None,
        "mae": sum(abs(v - label) for v, label in numeric) / len(numeric) if numeric else None,
    }


def summarize_cell(
    items: Sequence[ImageItem], records: Sequence[Record], final: Mapping[str, Answer], wall_s: float
) -> dict[str, Any]:
    """The figures of one cell run (one repeat)."""
    sent = [r for r in records if r.attempts > 0]
    latencies = [r.latency_s for r in sent]
    queue = [r.queue_s for r in sent]
    service = [max(0.0, r.latency_s - r.queue_s - r.backoff_s) for r in sent]
    ttft = [r.ttft_s for r in sent if r.ttft_s is not None]
    rates = [r.output_tokens_per_s for r in sent if r.output_tokens_per_s is not None]
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    errors = sum(1 for item in items if item.id not in final or final[item.id].error is not None)
    # Unknown if any successful request has no price: a partial sum would understate the bill.
    priced_all = len(costs) == sum(1 for r in records if r.error is None and r.attempts)
    cost = sum(costs) if costs and priced_all else None
    return {
        "items": len(items),
        "requests": sum(1 for r in records if r.attempts > 0),
        "attempts": sum(r.attempts for r in records),
        "errors": errors,
        "wall_s": wall_s,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
        "latency_p95_s": percentile(latencies, 95),
        "latency_p99_s": percentile(latencies, 99),
        "queue_p50_s": percentile(queue, 50),
        "service_p50_s": percentile(service, 50),
        # Streamed cells only (None otherwise): time to first token and output tokens per second after it.
        "ttft_p50_s": percentile(ttft, 50),
        "ttft_p95_s": percentile(ttft, 95),
        "output_tokens_per_s_p50": percentile(rates, 50),
        "images_per_s": len(items) / wall_s if wall_s > 0 else None,
        "input_tokens": _sum_usage(records, "input_tokens"),
        "output_tokens": _sum_usage(records, "output_tokens"),
        "thinking_tokens": _sum_usage(records, "thinking_tokens"),
        "cost_usd": cost,
        "cost_per_1k_images_usd": cost * 1000 / len(items) if cost is not None and items else None,
        **accuracy(items, final),
    }
