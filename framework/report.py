"""Tables and a chart from a bundle: answers per image per cell, and time, cost and accuracy per cell."""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any, spec: str = "", none: str = "-") -> str:
    if value is None:
        return none
    return format(value, spec) if spec else str(value)


def _cell_runs(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Cell entries grouped by cell id, repeats together, in matrix order."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["cells"]:
        runs.setdefault(entry["id"], []).append(entry)
    return runs


def short_names(cell_ids: list[str]) -> dict[str, str]:
    """Cell ids without the parts every cell shares, for narrow tables: provider and model go when all cells
    share them; the model goes when each provider runs only one."""
    parts = [cell_id.split("/", 2) for cell_id in cell_ids]
    if len({p[0] for p in parts}) == 1:
        drop_model = len({p[1] for p in parts}) == 1
        return {c: "/".join(p[2:] if drop_model else p[1:]) for c, p in zip(cell_ids, parts)}
    models = {}
    for p in parts:
        models.setdefault(p[0], set()).add(p[1])
    if all(len(m) == 1 for m in models.values()):
        return {c: f"{p[0]}/{p[2]}" for c, p in zip(cell_ids, parts)}
    return {c: c for c in cell_ids}


def _mean_of(entries: list[dict[str, Any]], key: str) -> float | None:
    values = [e["summary"][key] for e in entries if e["summary"].get(key) is not None]
    return mean(values) if values else None


def answers_table(bundle: dict[str, Any]) -> Table:
    """Rows: images with their label; columns: each cell's final answer (first repeat)."""
    runs = _cell_runs(bundle)
    names = short_names(list(runs))
    table = Table(title="Answers per image", title_justify="left")
    table.add_column("image")
    table.add_column("label", justify="right")
    for cell_id in runs:
        table.add_column(names[cell_id], justify="right")
    for item in bundle["items"]:
        row = [item["id"], _fmt(item["label"])]
        for entries in runs.values():
            answer = entries[0]["answers"].get(item["id"])
            if answer is None:
                row.append("")
            elif answer["error"] is not None:
                row.append("[red]err[/red]")
            else:
                ok = item["label"] is None or answer["value"] == item["label"]
                row.append(str(answer["value"]) if ok else f"[yellow]{answer['value']}[/yellow]")
        table.add_row(*row)
    return table


def cells_table(bundle: dict[str, Any]) -> Table:
    """One row per cell: time, latency, throughput, tokens, cost and accuracy (means over repeats)."""
    runs = _cell_runs(bundle)
    names = short_names(list(runs))
    table = Table(title="Per cell (mean over repeats)", title_justify="left")
    for name in ("cell", "wall s", "p50 s", "p95 s", "img/s", "tok in", "tok out", "cost $", "MAE", "exact", "errors"):
        table.add_column(name, justify="left" if name == "cell" else "right", no_wrap=True)
    for cell_id, entries in runs.items():
        unfinished = sorted({e["status"] for e in entries} - {"complete"})
        tokens_in, tokens_out = _mean_of(entries, "input_tokens"), _mean_of(entries, "output_tokens")
        table.add_row(
            names[cell_id] + (f" [red]({', '.join(unfinished)})[/red]" if unfinished else ""),
            _fmt(_mean_of(entries, "wall_s"), ".2f"),
            _fmt(_mean_of(entries, "latency_p50_s"), ".3f"),
            _fmt(_mean_of(entries, "latency_p95_s"), ".3f"),
            _fmt(_mean_of(entries, "images_per_s"), ".1f"),
            _fmt(tokens_in, ".0f"),
            _fmt(tokens_out, ".0f"),
            _fmt(_mean_of(entries, "cost_usd"), ".4f", none="?"),
            _fmt(_mean_of(entries, "mae"), ".2f"),
            _fmt(_mean_of(entries, "exact_match"), ".0%"),
            _fmt(sum(e["summary"]["errors"] for e in entries)),
        )
    return table


def filter_lines(bundle: dict[str, Any]) -> list[str]:
    """One line per cell whose strategy reported a tier-1 filter (adaptive)."""
    lines = []
    for entry in bundle["cells"]:
        f = entry.get("extra", {}).get("tier1_filter")
        if f:
            lines.append(
                f"{entry['id']}: tier 1 sent {entry['extra']['tier2_items']} of {entry['summary']['items']} images to tier 2; "
                f"precision {_fmt(f['precision'], '.0%')}, recall {_fmt(f['recall'], '.0%')} (escalate at >= {f['escalate_at']:g})"
            )
    return lines


def print_report(bundle: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    cells = list(_cell_runs(bundle))
    console.print(f"run {bundle['run_id']} ({bundle['status']}): {len(bundle['items'])} images, cells: {', '.join(cells)}")
    console.print(answers_table(bundle))
    console.print(cells_table(bundle))
    for line in filter_lines(bundle):
        console.print(line)
    if bundle.get("simulated"):
        console.print("[bold]simulated[/bold]: answers came from an emulator, not the real services")


def time_chart(bundle: dict[str, Any], path: Path) -> Path:
    """Kept for callers of the old name: the chart lives in visionbench.charts."""
    from visionbench.charts import time_chart as chart

    return chart(bundle, path)
