"""The verdict: which cell to pick and why, in one sentence, and the cells no other beats on every count.

By default (``decide: {objective: accuracy}``) the pick is the most accurate cell by the task's primary score, or,
when cheaper cells are not significantly less accurate (the paired tests of ``versus_best``, Holm-adjusted; on a
numeric task by MAE too) and lie within the best cell's intervals, the cheapest of those: the pick never rests
on a difference the tests call noise. ``objective: cost`` or ``latency``
picks the cheapest or the quickest (p95) among the cells that keep the config's bounds (``decide.min``,
``decide.max``). Cells that answered nothing are never picked, ranked or put in the Pareto set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionbench.report.significance import versus_best
from visionbench.report.stats import CellStats, cell_stats, cost_per_1k
from visionbench.results.model import Bundle


@dataclass(frozen=True)
class Verdict:
    """Which cell to pick (None: none can be), the sentence that says why, and the Pareto set."""

    pick: str | None
    why: str
    #: Cells no other cell beats on every one of (accuracy, cost per 1k, p95 latency), in matrix order.
    pareto: list[str]


def verdict(bundle: Mapping[str, Any], found: Any = None, names: Mapping[str, str] | None = None) -> Verdict | None:
    """The verdict of a run of two or more cells (None for one cell: there is nothing to choose between)."""
    bundle = Bundle.of(bundle)
    stats = cell_stats(bundle)
    if len(stats) < 2:
        return None
    name = (lambda c: names.get(c, c)) if names else (lambda c: c)
    decide = (bundle.config.get("decide") or {}) if isinstance(bundle.config, Mapping) else {}
    objective = decide.get("objective", "accuracy")
    metric, accuracy = _accuracy(bundle, found)
    # a cell with an answer to any item (labelled or not: "answered" in a summary counts labelled items only)
    answered = [s for s in stats if (s.metric("items") or 0) > (s.metric("errors") or 0)]
    if not answered:
        return Verdict(None, "no cell answered anything: nothing to pick (see Failed items)", [])
    kept, dropped = _within_bounds(answered, accuracy, decide, metric)
    pareto = _pareto(answered, accuracy)
    if not kept:
        return Verdict(None, f"no cell keeps the bounds of decide: ({'; '.join(dropped)})", pareto)
    cost = {s.cell_id: cost_per_1k(s) for s in kept}
    p95 = {s.cell_id: s.metric("latency_p95_s") for s in kept}
    if objective == "cost":
        pick = min(kept, key=lambda s: (_or_inf(cost[s.cell_id]), _or_inf(p95[s.cell_id]))).cell_id
        return Verdict(pick, f"pick {name(pick)}: the cheapest{_kept(dropped)} ({_money(cost[pick])}/1k)", pareto)
    if objective == "latency":
        pick = min(kept, key=lambda s: (_or_inf(p95[s.cell_id]), _or_inf(cost[s.cell_id]))).cell_id
        return Verdict(pick, f"pick {name(pick)}: the quickest{_kept(dropped)} (p95 {_secs(p95[pick])})", pareto)
    return Verdict(*_by_accuracy(bundle, found, kept, accuracy, metric, cost, dropped, name), pareto)


def _by_accuracy(
    bundle: Bundle,
    found: Any,
    kept: list[CellStats],
    accuracy: dict[str, float | None],
    metric: str,
    cost: dict[str, float | None],
    dropped: list[str],
    name: Any,
) -> tuple[str | None, str]:
    ids = {s.cell_id for s in kept}
    scored = [s for s in kept if accuracy.get(s.cell_id) is not None]
    if not scored:  # unlabelled: accuracy cannot decide
        pick = min(kept, key=lambda s: _or_inf(cost[s.cell_id])).cell_id
        return pick, f"pick {name(pick)}: the cheapest ({_money(cost[pick])}/1k); no labels, so accuracy cannot decide"
    best = max(scored, key=lambda s: accuracy[s.cell_id] or 0.0).cell_id
    vs = {v.cell: v for v in versus_best(bundle, found) if v.best == best}
    low = _low_bound(bundle, found, best, metric)
    mae_high = _mae_high(bundle, best)
    untold, behind = [], []  # not significantly less accurate than the best: within its interval, or outside it
    for s in scored:
        if s.cell_id == best or s.cell_id not in ids:
            continue
        if s.cell_id in vs and not _worse(vs[s.cell_id].differences, metric):
            value, mae = accuracy[s.cell_id], s.metric("mae")
            within = (low is None or (value is not None and value >= low)) and (
                mae_high is None or mae is None or mae <= mae_high
            )
            (untold if within else behind).append(s.cell_id)
    # As accurate as the best as far as the data can tell: no test calls the difference real, and its figure is one
    # the best's own interval allows.
    level = [best] + untold
    pick = min(level, key=lambda c: (_or_inf(cost.get(c)), level.index(c)))
    n = next((d.n for v in vs.values() for d in v.differences if d.metric == metric), None)
    on = f" on {n} images" if n else ""
    shown = f"{_named(metric, short=True)} {_share(accuracy[best], metric)}"
    caveat = (
        f"; {_listed(behind, name)} scored lower but{on} not significantly so: more images would tell" if behind else ""
    )
    alike = [c for c in level if _same_cost(cost.get(c), cost.get(pick))]
    if len(alike) > 1:  # as accurate as far as the data tells, and as dear: choosing one would be choosing noise
        return None, (
            f"no pick: {_listed(alike, name)} cannot be told apart (no difference in {_named(metric)} is "
            f"significant{on}, and they cost within {SAME_COST:.0%} of each other){caveat}"
        )
    if pick == best and len(level) == 1:
        strength = "significantly more than every other cell" if not behind else "the only one its interval allows"
        return pick, f"pick {name(pick)}: the most accurate ({shown}), {strength}{_kept(dropped)}{caveat}"
    if pick == best:
        return pick, (
            f"pick {name(pick)}: the most accurate ({shown}) and the cheapest of the {len(level)} cells the data "
            f"cannot tell apart from it{_kept(dropped)}{caveat}"
        )
    return pick, (
        f"pick {name(pick)}: no cell is significantly more accurate{on} ({name(best)}: {shown}, {name(pick)}: "
        f"{_share(accuracy[pick], metric)}), and {name(pick)} is the cheapest of those "
        f"({_money(cost.get(pick))}/1k against {_money(cost.get(best))}/1k){_kept(dropped)}{caveat}"
    )


#: Cells a verdict names in one list at most; the rest are counted ("and 245 more").
LISTED = 6


def _listed(cells: list[str], name: Any) -> str:
    """Cells by name, the first ``LISTED`` of them and how many more."""
    return listed([name(c) for c in cells])


def pareto_lines(names: list[str]) -> list[str]:
    """The Pareto set in a line, by ``names`` (none when it is one cell: the pick says it)."""
    if len(names) < 2:
        return []
    return [
        "Pareto set (no other cell is more accurate, cheaper and quicker at p95 at once): " + listed(names, 2 * LISTED)
    ]


def listed(names: list[str], most: int = LISTED) -> str:
    """Names in a sentence, the first ``most`` of them and how many more: a sweep of 500 cells is not 250 names."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _named(metric: str, short: bool = False) -> str:
    """A figure as a sentence names it: "exact match", "MAE", or a scorer's key as "the numeric score"."""
    if metric in ("exact match", "MAE"):
        return metric
    return f"{metric} score" if short else f"the {metric} score"


def _worse(differences: list[Any], metric: str) -> bool:
    """Whether a test calls a cell significantly less accurate than the best: by the figure weighed (lower), or,
    on a numeric task, by its absolute error (higher): an exact count can tie where the errors do not."""
    return any(
        d.significant and ((d.metric == metric and d.b < d.a) or (d.metric == "MAE" and d.b > d.a))
        for d in differences
        if d.a is not None and d.b is not None
    )


#: Costs this close (relative) are the same cost: no pick rests on a difference this small.
SAME_COST = 0.05


def _same_cost(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= SAME_COST * max(abs(a), abs(b)) or a == b


def _mae_high(bundle: Bundle, cell: str) -> float | None:
    """The upper end of the best cell's MAE interval (numeric tasks; None otherwise)."""
    from visionbench.report.significance import accuracy_intervals

    return accuracy_intervals(bundle, cell)["mae"].high


def _low_bound(bundle: Bundle, found: Any, cell: str, metric: str) -> float | None:
    """The lower end of the best cell's 95% interval of the figure weighed (None when it has none)."""
    from visionbench.report.significance import accuracy_intervals, interval

    if found is not None and found.scorers is not None and cell in found.cells:
        return interval(list(found.cells[cell].values.get(metric, {}).values())).low
    return accuracy_intervals(bundle, cell)["exact"].low


def _accuracy(bundle: Bundle, found: Any) -> tuple[str, dict[str, float | None]]:
    """The figure the verdict weighs accuracy by, and each cell's: the primary score's mean, else exact match."""
    if found is not None and found.scorers is not None:
        primary = str(found.primary)
        return primary, {c: found.cells[c].mean(primary) if c in found.cells else None for c in _cells(bundle)}
    return "exact match", {s.cell_id: s.metric("exact_match") for s in cell_stats(bundle)}


def _cells(bundle: Bundle) -> list[str]:
    return list(dict.fromkeys(e.id for e in bundle.cells))


def _within_bounds(
    cells: list[CellStats], accuracy: dict[str, float | None], decide: Mapping[str, Any], metric: str
) -> tuple[list[CellStats], list[str]]:
    """The cells that keep ``decide.min`` and ``decide.max``, and the bounds that left cells out (said in words)."""
    kept, dropped = [], []
    for s in cells:
        why = []
        for key, low in (decide.get("min") or {}).items():
            value = accuracy.get(s.cell_id) if key == metric else s.metric(key)
            if value is None or value < low:
                why.append(f"{key} >= {low:g}")
        limits = {"p95_s": s.metric("latency_p95_s"), "cost_per_1k": cost_per_1k(s), "mae": s.metric("mae")}
        for key, high in (decide.get("max") or {}).items():
            value = limits.get(key)
            if value is None or value > high:
                why.append(f"{key} <= {high:g}")
        if why:
            dropped += [w for w in why if w not in dropped]
        else:
            kept.append(s)
    return kept, dropped


def _pareto(cells: list[CellStats], accuracy: dict[str, float | None]) -> list[str]:
    """Cells no other beats on every count: accuracy (higher), cost per 1k and p95 latency (lower); an unknown
    figure counts as the worst."""

    def point(s: CellStats) -> tuple[float, float, float]:
        acc = accuracy.get(s.cell_id)
        return (-(acc if acc is not None else -1.0), _or_inf(cost_per_1k(s)), _or_inf(s.metric("latency_p95_s")))

    points = {s.cell_id: point(s) for s in cells}
    return [
        c
        for c, p in points.items()
        if not any(o != p and all(x <= y for x, y in zip(o, p)) for d, o in points.items() if d != c)
    ]


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else float(value)


def _kept(dropped: list[str]) -> str:
    return f" of the cells keeping {', '.join(dropped)}" if dropped else ""


def _money(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:.4f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


def _share(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "MAE" else f"{value:.0%}"


__all__ = ["Verdict", "listed", "pareto_lines", "verdict"]
