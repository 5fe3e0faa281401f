"""PNG charts from a bundle (matplotlib, Agg): wall time, cost against accuracy (Pareto front), latency spread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionbench.report.cellnames import setting, short_names
from visionbench.report.chart_cells import chart_cells, wrapped
from visionbench.report.concurrency_charts import write_concurrency_charts
from visionbench.report.figures import mark as _mark
from visionbench.report.figures import plt as _plt
from visionbench.report.figures import save as _save
from visionbench.report.figures import top_room as _top_room
from visionbench.report.scores import bundle_scores
from visionbench.report.significance import numeric_task, request_latencies
from visionbench.report.stats import CellStats, cell_stats, cost_per_1k
from visionbench.report.verdict import listed
from visionbench.results.model import Bundle, CellSummary

CHART_FILES = {
    "time": "time_per_strategy.png",
    "cost_accuracy": "cost_accuracy.png",
    "latency": "latency.png",
    "resolution": "resolution.png",
}
#: Labels of cells at one spot of the cost chart named at most.
MAX_STACKED = 4
#: Cells the cost chart labels besides the Pareto front, when there are more: the most accurate (the rest are dots).
MAX_COST_LABELS = 10
_BLUE, _ORANGE, _GREY, _GREEN = "#4C72B0", "#DD8452", "#8C8C8C", "#2A9D55"


def _title(bundle: Mapping[str, Any], what: str) -> str:
    bundle = Bundle.of(bundle)
    return f"{bundle.name}: {what} ({len(bundle.item_entries)} images)"


def time_chart(bundle: Mapping[str, Any], path: Path) -> Path:
    """Horizontal bars of wall time per cell: mean over repeats, 95% CI error bars when there are repeats.

    Provider-batch cells (a job's turnaround, minutes to hours on a real service) get their own panel and axis,
    so that the synchronous cells are not slivers beside them."""
    plt = _plt()
    chosen = chart_cells(bundle)
    every = cell_stats(bundle)
    names = short_names([s.cell_id for s in every])
    # a cell that replayed answers from an earlier run (run --replay) did not take its time for them: not drawn
    replayed = [names[s.cell_id] for s in every if s.cell_id in set(chosen.shown) and s.metric("replayed")]
    stats = [s for s in every if s.cell_id in set(chosen.shown) and not s.metric("replayed")]
    groups = [
        ("synchronous requests", [s for s in stats if s.strategy != "provider-batch"]),
        ("provider batch: job turnaround", [s for s in stats if s.strategy == "provider-batch"]),
    ]
    groups = [(title, cells) for title, cells in groups if cells]
    split = len(groups) > 1
    rows = [len(cells) for _, cells in groups] or [1]
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(8, 0.5 * sum(rows) + 1.8 + 0.6 * len(rows)),
        gridspec_kw={"height_ratios": rows},
        squeeze=False,
    )
    repeats = max((s.repeats for s in stats), default=1)
    for ax, (title, cells) in zip(axes[:, 0], groups or [("", [])]):
        labels = [names[s.cell_id] for s in cells]
        times = [s.wall_s.mean or 0.0 for s in cells]
        errs = [s.wall_s.ci95 or 0.0 for s in cells]
        ax.barh(labels, times, xerr=errs if any(errs) else None, color=_BLUE, capsize=4)
        for i, s in enumerate(cells):
            ax.annotate(
                f"{s.wall_s} s", (times[i] + errs[i], i), textcoords="offset points", xytext=(6, 0), va="center"
            )
        ax.invert_yaxis()
        top = max([t + e for t, e in zip(times, errs)] + [1e-3])
        ax.set_xlim(0, top * 1.22)  # room for the value labels, no more
        ax.grid(axis="x", alpha=0.3)
        if split:
            ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(
        wrapped(
            "wall time per cell run (s), lower is better"
            + (f"; mean of {repeats} repeats ± 95% CI" if repeats > 1 else "")
            + ("; each panel has its own scale" if split else ""),
            chosen.note(names),
            f"not drawn, answers replayed from an earlier run (not timed): {listed(replayed)}" if replayed else "",
        )
    )
    if not stats:
        _nothing(axes[0, 0], "no cell answered anything" if not replayed else "every cell's answers were replayed")
    fig.suptitle(_title(bundle, "wall time per cell (s)"))
    _mark(fig, bundle)
    return _save(fig, path, bundle)


def _nothing(ax, what: str = "no cell answered anything") -> None:
    """An empty chart that says why, without axes' ticks that would pass for figures."""
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def pareto_front(points: Sequence[tuple[str, float | None, float | None]]) -> list[str]:
    """Names of the points no other point beats on both (cheaper or equal AND at least as accurate, one strictly).

    Points with an unknown cost or accuracy (None) cannot be compared and are never on the front. Identical
    points are all kept. The result is ordered by cost, cheapest first.
    """
    known = [(n, c, a) for n, c, a in points if c is not None and a is not None]
    front = [
        (c, -a, n) for n, c, a in known if not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for _, c2, a2 in known)
    ]
    return [n for _, _, n in sorted(front)]


def cost_accuracy_chart(bundle: Mapping[str, Any], path: Path) -> Path:
    """Cost per 1,000 images (x) against accuracy (y) per cell, with the Pareto front as a step line.

    Accuracy is the primary scorer's mean (higher is better); without scores (a bundle from before scorers), MAE
    on numeric tasks (lower is better), exact match on the others. Labels are placed by
    adjustText so that they do not overlap each other or the points; cells at the same spot share a label.
    """
    from adjustText import adjust_text

    plt = _plt()
    chosen = chart_cells(bundle, MAX_COST_LABELS)
    every = cell_stats(bundle)
    names = short_names([s.cell_id for s in every])
    stats = [s for s in every if s.cell_id not in set(chosen.failed)]  # nothing answered: no point to draw
    labelled = set(chosen.shown)
    found = bundle_scores(bundle)
    primary = found.primary
    numeric = primary is None and numeric_task(bundle) and any(s.metric("mae") is not None for s in stats)

    def score(s: CellStats) -> float | None:  # higher is better, for the front
        if primary is not None:
            return found.cells[s.cell_id].mean(primary) if s.cell_id in found.cells else None
        value = s.metric("mae" if numeric else "exact_match")
        return None if value is None else (-value if numeric else value)

    def shown(value: float) -> float:  # on the y axis: MAE, or exact match in %
        return -value if numeric else value * 100

    points = [(s.cell_id, cost_per_1k(s), score(s)) for s in stats]
    front = set(pareto_front(points))
    labelled |= front
    known = [c for _, c, v in points if c is not None and c > 0 and v is not None]
    log = len(known) >= 2 and max(known) / min(known) > 30
    edge = min(known) / 3 if log else 0.0  # where cells of unknown (or zero, on a log axis) cost are drawn
    fig, ax = plt.subplots(figsize=(8, 5.5))
    notes: list[str] = []
    spots: dict[tuple[float, float, bool], list[str]] = {}
    dots: list[tuple[float, float]] = []
    for (cell_id, cost, acc), s in zip(points, stats):
        if acc is None:
            if cell_id in labelled:
                notes.append(f"{names[cell_id]}: no accuracy (no labels or no answers)")
            continue
        unknown = cost is None or (log and cost <= 0)
        if cell_id not in labelled:  # a big sweep: a dot without a label (the tables name it)
            dots.append((edge if unknown else cost, shown(acc)))
            continue
        exact = s.metric("exact_match")
        text = names[cell_id] + (f" (exact {exact:.0%})" if numeric and exact is not None else "")
        if primary is not None and numeric_task(bundle) and s.metric("mae") is not None:
            text += f" (MAE {s.metric('mae'):.2f})"
        text += " *" if cell_id in front else ""
        spots.setdefault((edge if unknown else cost, shown(acc), unknown), []).append(text)
    if dots:  # one collection: 500 scatter calls took 3 s to draw and save
        ax.scatter([x for x, _ in dots], [y for _, y in dots], s=12, color=_GREY, alpha=0.6, zorder=2)
    texts = []
    for (x, y, unknown), labels in _merge_close(spots, log).items():
        if unknown:
            ax.scatter([x], [y], s=80, facecolors="none", edgecolors=_GREY, marker="D", zorder=3)
        else:
            on_front = any(t.endswith("*") for t in labels)
            ax.scatter([x], [y], s=70, color=_ORANGE if on_front else _BLUE, zorder=3)
        if len(labels) > MAX_STACKED:  # cells at one spot: a few named, the rest counted (the tables have them)
            labels = [*labels[: MAX_STACKED - 1], f"and {len(labels) - MAX_STACKED + 1} more cells here"]
        texts.append(ax.text(x, y, "\n".join(labels), fontsize=8))
    if front:
        ordered = [p for p in sorted(points, key=lambda p: (p[1] or 0.0, -(p[2] or 0.0))) if p[0] in front]
        xs = [edge if p[1] is None or (log and p[1] <= 0) else p[1] for p in ordered]
        ax.step(
            xs,
            [shown(p[2]) for p in ordered],
            where="post",
            color=_ORANGE,
            linewidth=1.5,
            zorder=2,
            label="Pareto front (*): no cell is cheaper and more accurate",
        )
        # below the axes: a legend inside would sit on points or labels
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(edge / 2, max(known) * 3)
    else:
        top = max(known + [c for _, c, _ in points if c is not None] + [0.0])
        if top > 0:
            ax.set_xlim(-0.08 * top, top * 1.15)
        else:  # every cost is $0 (local models): a plain axis, not one scaled to 1e-6
            ax.set_xlim(-0.1, 1.0)
    if not stats:
        _nothing(ax)
    ys = [shown(a) for _, _, a in points if a is not None]  # the grey dots too
    if ys:  # fitted to the data, with a margin for the labels
        low, high = min(ys), max(ys)
        pad = (high - low) * 0.12 or max(abs(high) * 0.12, 0.05 if numeric else 5.0)
        ax.set_ylim(low - pad, high + pad)  # below 0 too: a dot at MAE 0 is drawn whole, not cut in half
    if any(unknown for _, _, unknown in spots):
        where = "at the left edge" if log else "at 0"
        notes.append(f"hollow diamond {where}: cost unknown" + (" or $0" if log else ""))
    if not known:
        notes.append("every known cost is $0 (local models)" if any(c == 0 for _, c, _ in points) else "no cost known")
    if chosen.left_out:
        notes.append(f"labelled: the {len(chosen.shown)} most accurate cells and the front; grey dots: the others")
    if chosen.failed:
        notes.append(chosen.note(names).split("; ")[-1])
    ax.set_xlabel("cost per 1,000 images (USD), lower is better" + (" (log scale)" if log else ""))
    if primary is not None:
        ax.set_ylabel(f"{primary}: mean score (% of labelled images), higher is better")
        ax.set_title(_title(bundle, f"cost vs {primary}"))
    elif numeric:
        ax.set_ylabel("mean absolute error (MAE), lower is better")
        ax.set_title(_title(bundle, "cost vs MAE"))
    else:
        ax.set_ylabel("exact-match accuracy (% of labelled images), higher is better")
        ax.set_title(_title(bundle, "cost vs exact-match accuracy"))
    ax.grid(alpha=0.3)
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=7, color="#555555")
    _mark(fig, bundle)
    fig.tight_layout()
    _top_room(fig, bundle)
    adjust_text(
        texts,
        ax=ax,
        expand=(1.2, 1.5),
        ensure_inside_axes=True,
        arrowprops=dict(arrowstyle="-", color=_GREY, lw=0.6),
        time_lim=2,
    )
    return _save(fig, path, bundle)


def _merge_close(
    spots: dict[tuple[float, float, bool], list[str]], log: bool, within: float = 0.02
) -> dict[tuple[float, float, bool], list[str]]:
    """Spots closer than ``within`` of each axis's span merged into one, labels stacked: labels of points that
    (nearly) coincide would otherwise sit on each other, and no label placement can pull them apart."""
    import math

    def x_of(x: float) -> float:
        return math.log10(x) if log and x > 0 else x

    if not spots:
        return {}
    xs, ys = [x_of(x) for x, _, _ in spots], [y for _, y, _ in spots]
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    merged: dict[tuple[float, float, bool], list[str]] = {}
    for (x, y, unknown), labels in spots.items():
        for mx, my, munknown in merged:
            if unknown == munknown and abs(x_of(x) - x_of(mx)) <= within * x_span and abs(y - my) <= within * y_span:
                merged[(mx, my, munknown)] += labels
                break
        else:
            merged[(x, y, unknown)] = list(labels)
    return merged


def latency_chart(bundle: Mapping[str, Any], path: Path) -> Path:
    """Box plots of per-request latency per cell (requests sent, all repeats); log scale when the spread is wide."""
    plt = _plt()
    bundle = Bundle.of(bundle)
    chosen = chart_cells(bundle)
    # the cell's own requests (not a judge's), read once for the tables and the charts
    by_cell = {c: request_latencies(bundle, c) for c in chosen.shown}
    names = short_names(list(dict.fromkeys(e.id for e in bundle.cells)))
    data = {names[c]: v for c, v in by_cell.items() if len(v)}
    fig, ax = plt.subplots(figsize=(8, 0.55 * max(len(data), 1) + 1.8))
    if data:
        ax.boxplot(
            list(data.values()),
            orientation="horizontal",
            tick_labels=list(data),
            showmeans=True,
            patch_artist=True,
            boxprops={"facecolor": "#C9D6EA"},
            medianprops={"color": _ORANGE},
        )
        ax.invert_yaxis()
        values = np.concatenate(list(data.values()))
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() > 30:
            ax.set_xscale("log")
            scale = "s, log scale"
        else:
            scale = "s"
        what = f"latency per request ({scale}); box = p25-p75, line = median, triangle = mean"
    else:
        _nothing(ax, "no cell answered anything" if chosen.failed else "no requests were sent")
        what = ""
    missing = [names[c] for c, v in by_cell.items() if not len(v)]
    # a cell whose answers were all replayed from an earlier run (run --replay) sent nothing of its own
    unsent = f"not drawn, no request of their own (replayed or not sent): {listed(missing)}" if missing else ""
    ax.set_xlabel(wrapped(what, chosen.note(names), unsent))
    ax.set_title(_title(bundle, "latency per request (s)"))
    ax.grid(axis="x", alpha=0.3)
    _mark(fig, bundle)
    return _save(fig, path, bundle)


def resolution_series(bundle: Mapping[str, Any]) -> dict[str, list[tuple[int, dict[str, float | None]]]]:
    """Cells that differ only in max_side, as one series each: (max_side, figures) in order of size.

    Figures are averaged over repeats: MAE, exact match, cost per 1,000 images, input tokens per image.
    """
    series: dict[str, dict[int, list[CellSummary]]] = {}
    for entry in Bundle.of(bundle).cells:
        side = (entry.preprocessing or {}).get("max_side")
        if "max_side" not in (entry.varied or {}) or side is None:
            continue
        others = ",".join(setting(k, v) for k, v in entry.varied.items() if k != "max_side")
        name = f"{entry.provider}/{entry.model}/{entry.label.split('@')[0]}" + (f" {others}" if others else "")
        series.setdefault(name, {}).setdefault(side, []).append(entry.summary)
    out = {}
    for name, by_side in series.items():
        if len(by_side) < 2:
            continue
        points = []
        for side, summaries in sorted(by_side.items()):
            figures = {}
            for key in ("mae", "exact_match", "cost_per_1k_images_usd", "input_tokens"):
                values = [v for s in summaries if (v := s.metric(key)) is not None]
                figures[key] = sum(values) / len(values) if values else None
            items = summaries[0].metric("items") or 0
            figures["tokens_per_image"] = (
                figures.pop("input_tokens") / items if figures["input_tokens"] and items else None
            )
            points.append((side, figures))
        out[name] = points
    return out


def resolution_chart(bundle: Mapping[str, Any], path: Path) -> Path | None:
    """Accuracy and cost per 1,000 images against max_side, one line per provider/model/strategy swept.

    Each cost point is labelled with the input tokens per image. None when no cells sweep max_side.
    """
    series = resolution_series(bundle)
    if not series:
        return None
    plt = _plt()
    numeric = numeric_task(bundle)
    metric = "mae" if numeric else "exact_match"
    fig, (acc_ax, cost_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, points in series.items():
        sides = [side for side, _ in points]
        acc = [f[metric] * (1 if numeric else 100) if f[metric] is not None else None for _, f in points]
        acc_ax.plot(sides, acc, marker="o", label=name)
        costs = [f["cost_per_1k_images_usd"] for _, f in points]
        if any(c is not None for c in costs):
            cost_ax.plot(sides, costs, marker="o", label=name)
            for side, (cost, (_, f)) in zip(sides, zip(costs, points)):
                if cost is not None and f["tokens_per_image"] is not None:
                    last = side == max(sides)  # the last label goes left of its point, inside the axes
                    cost_ax.annotate(
                        f"{f['tokens_per_image']:.0f} tok/img",
                        (side, cost),
                        textcoords="offset points",
                        xytext=(-4 if last else 4, 6),
                        ha="right" if last else "left",
                        fontsize=7,
                    )
    for ax in (acc_ax, cost_ax):
        ax.set_xscale("log", base=2)
        sides = sorted({side for points in series.values() for side, _ in points})
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.set_xlabel("max_side (px, longest side sent)")
        ax.grid(alpha=0.3)
    acc_ax.set_ylabel("MAE, lower is better" if numeric else "exact match (%), higher is better")
    acc_ax.set_ylim(bottom=0)
    cost_ax.set_ylabel("USD per 1,000 images")
    cost_ax.set_ylim(0, cost_ax.get_ylim()[1] * 1.1)  # room for the token labels above the highest line
    acc_ax.legend(fontsize=7, loc="best")
    fig.suptitle(_title(bundle, "accuracy and cost by resolution"))
    _mark(fig, bundle)
    return _save(fig, path, bundle)


def write_charts(bundle: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """The charts into ``folder``: {"time", "cost_accuracy", "latency"} and "resolution" when max_side is swept."""
    folder = Path(folder)
    makers = {
        "time": time_chart,
        "cost_accuracy": cost_accuracy_chart,
        "latency": latency_chart,
        "resolution": resolution_chart,
    }
    made = {key: fn(bundle, folder / CHART_FILES[key]) for key, fn in makers.items()}
    made.update(write_concurrency_charts(bundle, folder))  # a max_concurrency sweep; auto's limit over time
    return {key: path for key, path in made.items() if path is not None}
