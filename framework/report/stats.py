"""Figures across repeats and cells: means with 95% confidence intervals, and agreement between cells per item."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import mean, stdev
from typing import Any

from visionbench.results.model import Bundle, CellEntry

# Two-sided 95% Student t critical values by degrees of freedom (beyond 30: the normal 1.96 is close enough).
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


@dataclass(frozen=True)
class Estimate:
    """A mean over repeats with its 95% confidence half-width (None with fewer than two values)."""

    mean: float | None
    ci95: float | None
    n: int

    def __str__(self) -> str:
        if self.mean is None:
            return "-"
        return f"{self.mean:.3g}" if self.ci95 is None else f"{self.mean:.3g} ± {self.ci95:.2g}"


def estimate(values: list[float | None]) -> Estimate:
    xs = [v for v in values if v is not None]
    if not xs:
        return Estimate(None, None, 0)
    if len(xs) < 2:
        return Estimate(xs[0], None, 1)
    df = len(xs) - 1
    t = _T95[df - 1] if df <= len(_T95) else 1.96
    return Estimate(mean(xs), t * stdev(xs) / math.sqrt(len(xs)), len(xs))


@dataclass(frozen=True)
class CellStats:
    """One cell over all its repeats."""

    cell_id: str
    provider: str
    model: str
    strategy: str
    label: str
    repeats: int
    statuses: tuple[str, ...]
    wall_s: Estimate
    cost_usd: Estimate
    summary: dict[str, Any]  # per-request figures averaged over repeats (latency percentiles, MAE...)

    def metric(self, key: str) -> float | None:
        """A figure of the summary averaged over repeats, by its ``CellSummary`` name (None if it has none)."""
        return self.summary.get(key)


#: A cell summary's durations that the services' speed sets (in modelled seconds for an emulated run) and its rates.
SERVICE_SECONDS = frozenset(
    {"wall_s", "latency_p50_s", "latency_p90_s", "latency_p95_s", "latency_p99_s", "queue_p50_s"}
    | {"service_p50_s", "ttft_p50_s", "ttft_p95_s"}
)
SERVICE_RATES = frozenset({"images_per_s", "output_tokens_per_s_p50"})


#: cell_stats made once per bundle (by its ``cells`` list, held, and the time factor): every table, chart and the
#: verdict ask for it (13 times for one report; 5 s for 500 cells).
_held: dict[tuple[int, float], tuple[Any, list[CellStats]]] = {}


def cell_stats(bundle: Mapping[str, Any]) -> list[CellStats]:
    """Cells in matrix order, repeats folded into estimates; an emulated run's times in modelled seconds (wall
    seconds / the time scale: ``Bundle.to_modelled``), so they read as the services' would."""
    bundle = Bundle.of(bundle)
    cells = dict.get(bundle, "cells")
    key = (id(cells), bundle.to_modelled)
    held = _held.get(key)
    if held is not None and held[0] is cells:
        return list(held[1])
    if len(_held) > 16:
        _held.clear()
    out = _cell_stats(bundle)
    _held[key] = (cells, out)
    return list(out)


def _cell_stats(bundle: Bundle) -> list[CellStats]:
    factor = bundle.to_modelled
    groups: dict[str, list[CellEntry]] = {}
    for entry in bundle.cells:
        groups.setdefault(entry.id, []).append(entry)
    out = []
    for cell_id, entries in groups.items():
        averaged = {}
        for key in entries[0].summary:
            values = [v for e in entries if isinstance(v := e.summary.metric(key), (int, float))]
            averaged[key] = math.fsum(values) / len(values) if values else None
            if averaged[key] is not None and factor != 1.0:
                if key in SERVICE_SECONDS:
                    averaged[key] *= factor
                elif key in SERVICE_RATES:
                    averaged[key] /= factor
        first = entries[0]
        out.append(
            CellStats(
                cell_id,
                first.provider,
                first.model,
                first.strategy,
                first.label,
                len(entries),
                tuple(e.status for e in entries),
                estimate([e.summary.wall_s * factor for e in entries]),
                estimate([e.summary.cost_usd for e in entries]),
                averaged,
            )
        )
    return out


def cost_per_1k(stats: CellStats) -> float | None:
    """Dollars per 1,000 images, averaged over repeats; None when unknown."""
    value = stats.metric("cost_per_1k_images_usd")
    if value is None and stats.cost_usd.mean is not None and (items := stats.metric("items")):
        value = stats.cost_usd.mean * 1000 / items
    return value


def agreement(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """Per item: the most common final answer across cells (first repeat) and the share of cells giving it."""
    bundle = Bundle.of(bundle)
    firsts = bundle.entries_of(repeat=0)
    per_item: dict[str, dict[str, Any]] = {}
    for item in bundle.item_entries:
        answers = [e.answers.get(item.id) for e in firsts]
        values = [a.value for a in answers if a and a.error is None]
        if not values:
            per_item[item.id] = {"modal": None, "agreement": None, "answers": 0}
            continue
        key, count = Counter(map(_hashable, values)).most_common(1)[0]
        modal = next(v for v in values if _hashable(v) == key)  # the answer itself: a JSON object stays one
        per_item[item.id] = {"modal": modal, "agreement": count / len(firsts), "answers": len(values)}
    scored = [v["agreement"] for v in per_item.values() if v["agreement"] is not None]
    return {"items": per_item, "mean_agreement": mean(scored) if scored else None}


def _hashable(value: Any) -> Any:
    """What answers are counted alike by: a scalar itself; a JSON object or list by its canonical JSON (key order
    irrelevant)."""
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    try:
        return "\0json:" + json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def ratio_text(ratio: float) -> str:
    """A multiple as a reader takes it in: ``x0.35``, ``x12``, ``<x0.01`` (never ``x0.00``), ``x1,234``."""
    if ratio < 0.01:
        return "<x0.01" if ratio > 0 else "x0"
    if ratio < 10:
        return f"x{ratio:.2f}"
    return f"x{ratio:,.0f}"


def count_text(value: float) -> str:
    """A count (tokens, requests) written out with thousands separators, never in scientific notation."""
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.3g}"
