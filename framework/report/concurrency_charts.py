"""Concurrency charts from a bundle: a ``max_concurrency`` sweep (guidellm-style throughput and latency against
concurrency), and the limit ``max_concurrency: auto`` found over the run's time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from visionbench.report.cellnames import setting as setting_text
from visionbench.report.figures import mark as _mark
from visionbench.report.figures import plt as _plt
from visionbench.report.figures import save as _save
from visionbench.results.model import Bundle, CellEntry

CONCURRENCY_FILES = {"concurrency_sweep": "concurrency_sweep.png", "concurrency": "concurrency.png"}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def time_weighted_limit(concurrency: dict[str, Any], end_s: float | None = None) -> float | None:
    """The mean of an auto cell's first limit over its time (the history is a step function)."""
    limits = concurrency.get("limits") or []
    if not limits or not limits[0]["history"]:
        return None
    history = limits[0]["history"]
    end = max(end_s or history[-1][0], history[-1][0])
    area = sum(n * (t1 - t0) for (t0, n), (t1, _) in zip(history, history[1:] + [[end, 0]]))
    span = end - history[0][0]
    return area / span if span > 0 else float(history[0][1])


def sweep_series(bundle: Mapping[str, Any]) -> dict[str, list[tuple[float, str, dict[str, float | None]]]]:
    """Cells that differ in ``max_concurrency``, one series per provider/model/strategy (and other axes).

    Each point: (concurrency, "fixed" or "auto", figures averaged over repeats: req/s, p50 and p95 latency).
    An ``auto`` cell sits at the time-weighted mean of the limit it found.
    """
    groups: dict[str, dict[str, list[CellEntry]]] = {}
    factor = Bundle.of(bundle).to_modelled  # an emulated run's times in its services' own seconds
    for entry in Bundle.of(bundle).cells:
        varied = entry.varied or {}
        if "max_concurrency" not in varied:
            continue
        others = ",".join(setting_text(k, v) for k, v in varied.items() if k != "max_concurrency")
        name = f"{entry.provider}/{entry.model}/{entry.strategy}" + (f" {others}" if others else "")
        groups.setdefault(name, {}).setdefault(str(varied["max_concurrency"]), []).append(entry)
    out = {}
    for name, by_setting in groups.items():
        if len(by_setting) < 2:
            continue
        points = []
        for setting, entries in by_setting.items():
            summaries = [e.summary for e in entries]
            figures = {
                "requests_per_s": _mean([s.requests / (s.wall_s * factor) if s.wall_s else None for s in summaries]),
                "p50_s": _mean([s.latency_p50_s * factor if s.latency_p50_s is not None else None for s in summaries]),
                "p95_s": _mean([s.latency_p95_s * factor if s.latency_p95_s is not None else None for s in summaries]),
            }
            if setting == "auto":
                extras = [(e.extra or {}).get("concurrency") for e in entries]
                level = _mean([time_weighted_limit(c) if c else None for c in extras])
                if level is not None:
                    points.append((level, "auto", figures))
            else:
                points.append((float(setting), "fixed", figures))
        out[name] = sorted(points, key=lambda p: (p[1] == "auto", p[0]))
    return out


def concurrency_sweep_chart(bundle: Mapping[str, Any], path: Path) -> Path | None:
    """Throughput (requests/s) and p50/p95 latency against max_concurrency; None when nothing sweeps it."""
    series = sweep_series(bundle)
    if not series:
        return None
    plt = _plt()
    fig, (rate_ax, lat_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for i, (name, points) in enumerate(series.items()):
        color = f"C{i}"
        fixed = [(c, f) for c, kind, f in points if kind == "fixed"]
        xs = [c for c, _ in fixed]
        rate_ax.plot(xs, [f["requests_per_s"] for _, f in fixed], marker="o", color=color, label=name)
        lat_ax.plot(xs, [f["p50_s"] for _, f in fixed], marker="o", color=color, label=f"{name} p50")
        lat_ax.plot(xs, [f["p95_s"] for _, f in fixed], marker="^", ls="--", color=color, label=f"{name} p95")
        for level, kind, f in points:
            if kind == "auto":
                rate_ax.scatter([level], [f["requests_per_s"]], marker="*", s=160, color=color, zorder=3)
                rate_ax.annotate("auto", (level, f["requests_per_s"]), textcoords="offset points", xytext=(6, 4))
                for key in ("p50_s", "p95_s"):
                    if f[key] is not None:
                        lat_ax.scatter([level], [f[key]], marker="*", s=120, color=color, zorder=3)
    ticks = sorted({c for points in series.values() for c, kind, _ in points if kind == "fixed"})
    for ax in (rate_ax, lat_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("max_concurrency (requests in flight; * = auto, at its mean limit)")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    rate_ax.set_ylabel("throughput (requests/s)")
    lat_ax.set_ylabel("latency per request (s)")
    rate_ax.legend(fontsize=7, loc="best")
    lat_ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{Bundle.of(bundle).name}: throughput and latency by concurrency")
    _mark(fig, bundle)
    return _save(fig, path, bundle)


def concurrency_chart(bundle: Mapping[str, Any], path: Path) -> Path | None:
    """The limit ``auto`` found, over the run's time, one step line per cell and model; None without auto."""
    lines = []
    for entry in Bundle.of(bundle).cells:
        concurrency = (entry.extra or {}).get("concurrency")  # the strategy's own figures
        for limit in (concurrency or {}).get("limits") or []:
            if limit["history"]:
                label = entry.label if len(concurrency["limits"]) == 1 else f"{entry.label} ({limit['key']})"
                lines.append((label, limit))
    if not lines:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.2))
    factor = Bundle.of(bundle).to_modelled  # an emulated run's times in its services' own seconds
    for label, limit in lines:
        times = [t * factor for t, _ in limit["history"]]
        values = [n for _, n in limit["history"]]
        ax.step(times, values, where="post", label=f"{label}: {limit['pushbacks']} pushbacks")
    ax.set_xlabel("seconds since the run began")
    ax.set_ylabel("requests in flight allowed")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{Bundle.of(bundle).name}: max_concurrency auto over time (429s / overloads cut it)")
    _mark(fig, bundle)
    return _save(fig, path, bundle)


def write_concurrency_charts(bundle: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Those of the two charts the bundle has data for, into ``folder``."""
    made = {
        "concurrency_sweep": concurrency_sweep_chart(bundle, Path(folder) / CONCURRENCY_FILES["concurrency_sweep"]),
        "concurrency": concurrency_chart(bundle, Path(folder) / CONCURRENCY_FILES["concurrency"]),
    }
    return {key: path for key, path in made.items() if path is not None}
