"""Tables and a chart from a bundle: answers per image per cell, and time, cost and accuracy per cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from visionbench.cellnames import short_names
from visionbench.significance import (
    Difference,
    Interval,
    accuracy_intervals,
    numeric_task,
    proportion_interval,
    versus_best,
)
from visionbench.stats import Estimate, cell_stats, cost_per_1k


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


#: Images the terminal's answers table shows at most (a 100k-image run's table would take minutes to draw).
ANSWER_ROWS = 200


def answers_table(bundle: dict[str, Any], max_rows: int = ANSWER_ROWS) -> Table:
    """Rows: images with their label (the first ``max_rows``); columns: each cell's final answer (first repeat)."""
    runs = _cell_runs(bundle)
    names = short_names(list(runs))
    items = bundle["items"]
    caption = None
    if len(items) > max_rows:
        caption = f"the first {max_rows:,} of {len(items):,} images; report.html has them all"
    table = Table(title="Answers per image", title_justify="left", caption=caption, caption_justify="left")
    table.add_column("image")
    table.add_column("label", justify="right")
    for cell_id in runs:
        table.add_column(names[cell_id], justify="right")
    for item in items[:max_rows]:
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


def _with_ci(est: Estimate, spec: str, none: str = "-") -> str:
    if est.mean is None:
        return none
    return format(est.mean, spec) + (f" ± {est.ci95:{spec}}" if est.ci95 is not None else "")


def cells_table(bundle: dict[str, Any]) -> Table:
    """One row per cell: time, latency, throughput, tokens, cost and accuracy (means over repeats, ± 95% CI)."""
    stats = cell_stats(bundle)
    names = short_names([c.cell_id for c in stats])
    repeats = max((c.repeats for c in stats), default=1)
    title = "Per cell" + (f" (mean ± 95% CI over {repeats} repeats)" if repeats > 1 else "")
    table = Table(title=title, title_justify="left")
    # Time to first token exists only for streamed cells: its columns show only when one is.
    ttft = any(c.summary.get("ttft_p50_s") is not None for c in stats)
    for name in (
        "cell",
        "wall s",
        "p50 s",
        "p95 s",
        "p99 s",
        *(("ttft p50", "ttft p95") if ttft else ()),
        "img/s",
        "tok in",
        "tok out",
        "tok think",
        "cost $",
        "$/1k img",
        "MAE",
        "exact",
        "errors",
    ):
        table.add_column(name, justify="left" if name == "cell" else "right", no_wrap=True)
    for cell in stats:
        s = cell.summary
        unfinished = sorted(set(cell.statuses) - {"complete"})
        errors = sum(e["summary"]["errors"] for e in bundle["cells"] if e["id"] == cell.cell_id)
        table.add_row(
            names[cell.cell_id] + (f" [red]({', '.join(unfinished)})[/red]" if unfinished else ""),
            _with_ci(cell.wall_s, ".2f"),
            _fmt(s.get("latency_p50_s"), ".3f"),
            _fmt(s.get("latency_p95_s"), ".3f"),
            _fmt(s.get("latency_p99_s"), ".3f"),
            *((_fmt(s.get("ttft_p50_s"), ".3f"), _fmt(s.get("ttft_p95_s"), ".3f")) if ttft else ()),
            _fmt(s.get("images_per_s"), ".1f"),
            _fmt(s.get("input_tokens"), ".0f"),
            _fmt(s.get("output_tokens"), ".0f"),
            _fmt(s.get("thinking_tokens"), ".0f"),
            _with_ci(cell.cost_usd, ".4f", none="?"),
            _fmt(s.get("cost_per_1k_images_usd"), ".3f", none="?"),
            _fmt(s.get("mae"), ".2f"),
            _fmt(s.get("exact_match"), ".0%"),
            _fmt(errors),
        )
    return table


def filter_lines(bundle: dict[str, Any]) -> list[str]:
    """One line per cell whose strategy reported a tier-1 filter (adaptive)."""
    lines = []
    for entry in bundle["cells"]:
        f = entry.get("extra", {}).get("tier1_filter")
        if f:
            tp, fp, fn = f["true_positives"], f["false_positives"], f["false_negatives"]
            lines.append(
                f"{entry['id']}: tier 1 sent {entry['extra']['tier2_items']} of {entry['summary']['items']} "
                f"images to tier 2; precision {_share(proportion_interval(tp, tp + fp))}, "
                f"recall {_share(proportion_interval(tp, tp + fn))} "
                f"(95% exact intervals; escalate at >= {f['escalate_at']:g})"
            )
    return lines


@dataclass(frozen=True)
class Rows:
    """A small table as plain text: shown by the terminal report and the HTML one alike."""

    title: str
    head: list[str]
    rows: list[list[str]]
    caption: str = ""

    def rich(self) -> Table:
        table = Table(title=self.title, title_justify="left", caption=self.caption or None)
        for i, name in enumerate(self.head):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        for row in self.rows:
            table.add_row(*row)
        return table


def accuracy_rows(bundle: dict[str, Any]) -> Rows:
    """Each cell's MAE and exact match with a 95% bootstrap interval over images."""
    names = short_names(list(_cell_runs(bundle)))
    rows = []
    for cell in _cell_runs(bundle):
        got = accuracy_intervals(bundle, cell)
        rows.append([names[cell], str(got["exact"].n), got["mae"].text(".2f"), _share(got["exact"])])
    return Rows("Accuracy, 95% interval over images", ["cell", "images", "MAE", "exact match"], rows)


def _share(i: Interval) -> str:
    if i.value is None:
        return "-"
    if i.low is None or i.high is None:
        return f"{i.value:.0%} (n={i.n})"
    return f"{i.value:.0%} [{i.low:.0%}, {i.high:.0%}]"


def difference_rows(bundle: dict[str, Any]) -> Rows | None:
    """Each cell against the most accurate one: the accuracy metric and p50 latency, each with its test."""
    found = versus_best(bundle)
    if not found:
        return None
    names = short_names(list(_cell_runs(bundle)))
    metric = "MAE" if numeric_task(bundle) else "exact match"
    spec = ".2f" if metric == "MAE" else ".0%"
    best = found[0].best
    score = accuracy_intervals(bundle, best)["mae" if metric == "MAE" else "exact"].value
    cost = {c.cell_id: cost_per_1k(c) for c in cell_stats(bundle)}
    rows = []
    for vs in found:
        by = {d.metric: d for d in vs.differences}
        acc, lat = by.get(metric), by.get("latency p50 s")
        a, b = cost.get(best), cost.get(vs.cell)
        rows.append(
            [
                names[vs.cell],
                _fmt(acc.b, spec) if acc else "-",
                *_test_cells(acc),
                _cost_ratio(a, b),
                _fmt(lat.b, ".3f") if lat else "-",
                *_test_cells(lat),
            ]
        )
    return Rows(
        f"Against the most accurate cell, {names[best]} ({metric} {_fmt(score, spec)}; paired on the same images, "
        "5% level)",
        ["cell", metric, "p", "real?", "cost", "p50 s", "p ", "real? "],
        rows,
        f"{metric}: Wilcoxon signed-rank (McNemar exact for exact match, one repeat); cost: per 1,000 images, "
        "as a multiple of the most accurate cell's; latency: Mann-Whitney U over requests",
    )


def _cost_ratio(best: float | None, other: float | None) -> str:
    if best is None or other is None:
        return "?"
    if best == 0:
        return "x1.00" if other == 0 else "more"
    return f"x{other / best:.2f}"


def _test_cells(d: Difference | None) -> tuple[str, str]:
    if d is None or d.p is None:
        return "-", "-"
    p = f"{d.p:.2g}" if d.p >= 0.001 else "<0.001"
    if d.significant:
        return p, "yes"
    return p, "no" if d.detectable else f"n={d.n} too few"


@dataclass(frozen=True)
class Failures:
    """The items of one cell that ended without an answer for one kind of reason."""

    cell: str
    kind: str
    count: int
    first: str


def failures(bundle: dict[str, Any]) -> list[Failures]:
    """Failed items grouped by cell and error kind (all repeats), with the first message of each group."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in bundle["cells"]:
        for answer in entry["answers"].values():
            if answer.get("error"):
                kind, _, message = answer["error"].partition(": ")
                groups.setdefault((entry["id"], kind), []).append(message or kind)
    return [Failures(cell, kind, len(msgs), msgs[0]) for (cell, kind), msgs in groups.items()]


def failures_table(found: list[Failures]) -> Table:
    table = Table(title="Failed items", title_justify="left")
    for name in ("cell", "error", "items", "first message"):
        table.add_column(name, justify="right" if name == "items" else "left", overflow="fold")
    for f in found:
        table.add_row(f.cell, f.kind, str(f.count), f.first)
    return table


def print_report(bundle: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    cells = list(_cell_runs(bundle))
    console.print(
        f"run {bundle['run_id']} ({bundle['status']}): {len(bundle['items'])} images, cells: {', '.join(cells)}"
    )
    console.print(answers_table(bundle))
    console.print(cells_table(bundle))
    if any(item["label"] is not None for item in bundle["items"]):
        console.print(accuracy_rows(bundle).rich())
    differences = difference_rows(bundle)
    if differences is not None:
        console.print(differences.rich())
    for line in filter_lines(bundle):
        console.print(line)
    if bundle.get("simulated"):
        console.print("[bold]simulated[/bold]: answers came from an emulator, not the real services")
    found = failures(bundle)
    if found:
        console.print(failures_table(found))
