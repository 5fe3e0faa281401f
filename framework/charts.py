"""PNG charts from a bundle (matplotlib, Agg): wall time, cost against accuracy (Pareto front), latency spread."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionbench.cellnames import short_names
from visionbench.stats import CellStats, cell_stats

CHART_FILES = {"time": "time_per_strategy.png", "cost_accuracy": "cost_accuracy.png", "latency": "latency.png"}
_BLUE, _ORANGE, _GREY, _GREEN = "#4C72B0", "#DD8452", "#8C8C8C", "#2A9D55"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _title(bundle: dict[str, Any], what: str) -> str:
    return f"{bundle['config']['name']}: {what} ({len(bundle['items'])} images)"


def cost_per_1k(stats: CellStats) -> float | None:
    """Dollars per 1,000 images, averaged over repeats; None when unknown."""
    value = stats.summary.get("cost_per_1k_images_usd")
    if value is None and stats.cost_usd.mean is not None and stats.summary.get("items"):
        value = stats.cost_usd.mean * 1000 / stats.summary["items"]
    return value


def time_chart(bundle: dict[str, Any], path: Path) -> Path:
    """Horizontal bars of wall time per cell: mean over repeats, 95% CI error bars when there are repeats."""
    plt = _plt()
    stats = cell_stats(bundle)
    names = short_names([s.cell_id for s in stats])
    labels = [names[s.cell_id] for s in stats]
    times = [s.wall_s.mean or 0.0 for s in stats]
    errs = [s.wall_s.ci95 or 0.0 for s in stats]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(labels) + 1.6))
    ax.barh(labels, times, xerr=errs if any(errs) else None, color=_BLUE, capsize=4)
    for i, s in enumerate(stats):
        ax.annotate(f"{s.wall_s} s", (times[i] + errs[i], i), textcoords="offset points", xytext=(6, 0), va="center")
    ax.invert_yaxis()
    repeats = max((s.repeats for s in stats), default=1)
    ax.set_xlabel(
        "wall time per cell run (s), lower is better" + (f"; mean of {repeats} repeats ± 95% CI" if repeats > 1 else "")
    )
    ax.set_title(_title(bundle, "wall time per cell (s)"))
    ax.set_xlim(0, max([t + e for t, e in zip(times, errs)] + [1e-3]) * 1.35)
    return _save(fig, path)


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


def cost_accuracy_chart(bundle: dict[str, Any], path: Path) -> Path:
    """Cost per 1,000 images (x) against exact-match accuracy (y) per cell, with the Pareto front as a step line."""
    plt = _plt()
    stats = cell_stats(bundle)
    names = short_names([s.cell_id for s in stats])
    points = [(s.cell_id, cost_per_1k(s), s.summary.get("exact_match")) for s in stats]
    front = set(pareto_front(points))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    notes, groups = [], {}  # cells at the same spot share one marker and one label
    for (cell_id, cost, acc), s in zip(points, stats):
        if acc is None:
            notes.append(f"{names[cell_id]}: no accuracy (no labels or no answers)")
            continue
        mae = s.summary.get("mae")
        text = names[cell_id] + (f" (MAE {mae:.2f})" if mae is not None else "") + (" *" if cell_id in front else "")
        groups.setdefault((cost is None, round(cost or 0.0, 9), round(acc * 100, 6)), []).append(text)
    xmax = max([x for (_, x, _) in groups] + [1e-9])
    labels: list[tuple[float, float, list[str]]] = []  # nearby points share one label, so texts never overlap
    for (unknown, x, y), texts in groups.items():
        if unknown:
            ax.scatter([0], [y], s=80, facecolors="none", edgecolors=_GREY, marker="D", zorder=3)
            texts = [t + " - cost unknown" for t in texts]
            x = 0.0
        else:
            ax.scatter([x], [y], s=70, color=_ORANGE if texts[0].endswith("*") else _BLUE, zorder=3)
        near = next((lab for lab in labels if abs(lab[0] - x) < 0.08 * xmax and abs(lab[1] - y) < 6), None)
        if near is None:
            labels.append((x, y, list(texts)))
        else:
            near[2].extend(texts)
    # Labels hang below-right of their point; one that would run into a label above it moves down (with a leader).
    placed: list[tuple[float, float, float, float]] = []  # (left, right, top, bottom) of drawn labels, data units
    line_h = 3.4  # one 8 pt text line in accuracy points, for this figure size and y range
    char_w = 8 * 0.65 / 72 * (1.34 * xmax / 6.4)  # one 8 pt character (DejaVu Sans) in cost units; 6.4 in of axis
    for x, y, texts in sorted(labels, key=lambda lab: (-lab[1], lab[0])):
        left, right, top = x, x + 0.02 * xmax + char_w * max(map(len, texts)), y - 1
        for pleft, pright, ptop, pbottom in sorted(placed, key=lambda p: -p[2]):
            if left < pright and pleft < right and top > pbottom - 0.5 and top - len(texts) * line_h < ptop:
                top = pbottom - 0.5
        placed.append((left, right, top, top - len(texts) * line_h))
        leader = dict(arrowprops=dict(arrowstyle="-", color=_GREY, lw=0.6)) if top < y - 2 else {}
        ax.annotate("\n".join(texts), (x, y), xytext=(x + 0.02 * xmax, top), fontsize=8, va="top", **leader)
    if front:
        ordered = [p for p in sorted(points, key=lambda p: (p[1] or 0.0, -(p[2] or 0.0))) if p[0] in front]
        xs, ys = [p[1] for p in ordered], [p[2] * 100 for p in ordered]
        ax.step(
            xs,
            ys,
            where="post",
            color=_ORANGE,
            linewidth=1.5,
            zorder=2,
            marker="o",
            label="Pareto front (*): no cell is cheaper and more accurate",
        )
        ax.legend(loc="lower right", fontsize=8)
    costs = [c for _, c, _ in points if c]
    if costs and max(costs) / min(costs) > 100:
        ax.set_xscale("symlog", linthresh=min(costs))
    if not costs:
        notes.append("every known cost is $0 (local models)" if any(c == 0 for _, c, _ in points) else "no cost known")
    ax.set_xlim(-0.04 * max(costs + [1.0]), 1.3 * max(costs + [1.0]))
    ax.set_ylim(-5, 110)
    ax.set_xlabel("cost per 1,000 images (USD), lower is better; hollow diamond at 0 = cost unknown")
    ax.set_ylabel("exact-match accuracy (% of labelled images), higher is better")
    ax.set_title(_title(bundle, "cost vs accuracy (USD per 1k images, %)"))
    ax.grid(alpha=0.3)
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=7, color="#555555")
    return _save(fig, path)


def latency_chart(bundle: dict[str, Any], path: Path) -> Path:
    """Box plots of per-request latency per cell (requests sent, all repeats); log scale when the spread is wide."""
    plt = _plt()
    by_cell: dict[str, list[float]] = {}
    for entry in bundle["cells"]:
        by_cell.setdefault(entry["id"], [])
    for rec in bundle["records"]:
        if rec["attempts"] > 0:
            by_cell.setdefault(rec["cell"], []).append(rec["latency_s"])
    names = short_names(list(by_cell))
    data = {names[c]: v for c, v in by_cell.items() if v}
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
        values = [v for vs in data.values() for v in vs]
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
            ax.set_xlabel("latency per request (s, log scale); box = p25-p75, line = median, triangle = mean")
        else:
            ax.set_xlabel("latency per request (s); box = p25-p75, line = median, triangle = mean")
    else:
        ax.text(0.5, 0.5, "no requests were sent", ha="center", va="center", transform=ax.transAxes)
    missing = [names[c] for c, v in by_cell.items() if not v]
    if missing:
        ax.set_ylabel("no requests: " + ", ".join(missing), fontsize=8)
    ax.set_title(_title(bundle, "latency per request (s)"))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def write_charts(bundle: dict[str, Any], folder: Path) -> dict[str, Path]:
    """All three charts into ``folder``: {"time": ..., "cost_accuracy": ..., "latency": ...}."""
    folder = Path(folder)
    makers = {"time": time_chart, "cost_accuracy": cost_accuracy_chart, "latency": latency_chart}
    return {key: fn(bundle, folder / CHART_FILES[key]) for key, fn in makers.items()}
