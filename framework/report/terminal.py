"""Tables and a chart from a bundle: answers per image per cell, and time, cost and accuracy per cell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from visionbench.report.cellnames import cell_codes, setting, short_names
from visionbench.report.chart_cells import MAX_CHART_CELLS, chart_cells
from visionbench.report.figures import time_scale_words
from visionbench.report.prices import prices_sheet
from visionbench.report.scores import bundle_scores, glance, group_field, group_means, groups, shows_exact
from visionbench.report.significance import (
    Difference,
    Interval,
    accuracy_intervals,
    interval,
    numeric_task,
    proportion_interval,
    versus_best,
)
from visionbench.report.stats import CellStats, Estimate, cell_stats, cost_per_1k, ratio_text
from visionbench.report.tables import Column, Sheet, plain, print_sheet, to_csv, to_json, to_markdown
from visionbench.results.model import Bundle, CellEntry
from visionbench.results.scoring import acceptable, matches, task_answer_type
from visionbench.run.plugins import Registry


def _fmt(value: Any, spec: str = "", none: str = "-") -> str:
    if value is None:
        return none
    return format(value, spec) if spec else str(value)


#: Longest line of a JSON answer in the answers table (longer ones are cut with an ellipsis: report.html and
#: ``--format json`` have them whole).
JSON_LINE = 32


def _answer_text(value: Any) -> str:
    """An answer or label as a table shows it: a JSON object one ``key: value`` field a line (values as compact
    JSON), lists as compact JSON, the rest as text."""
    if value is None:
        return "-"
    if isinstance(value, dict) and value:
        return "\n".join(_cut(f"{k}: {_compact(v)}") for k, v in value.items())
    if isinstance(value, (dict, list)):
        return _cut(_compact(value))
    return str(value)


def _marked(value: Any, label: Any, answer_type: str | None, ok: bool) -> str:
    """An answer as the answers table shows it, yellow where it differs from the label: for a JSON object against
    an object label, only the fields that differ (or that the label has not)."""
    if ok or not (answer_type == "json" and isinstance(value, dict) and value and isinstance(label, dict)):
        shown = escape(_answer_text(value))
        return shown if ok else f"[yellow]{shown}[/yellow]"
    lines = []
    for k, v in value.items():
        line = escape(_cut(f"{k}: {_compact(v)}"))
        right = k in label and matches(v, label[k], answer_type)
        lines.append(line if right else f"[yellow]{line}[/yellow]")
    return "\n".join(lines)


def _compact_text(value: Any) -> str:
    """An answer or label whole on one line: JSON objects and lists as compact JSON, the rest as text."""
    if value is None:
        return "-"
    return _compact(value) if isinstance(value, (dict, list)) else str(value)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _cut(line: str, most: int = JSON_LINE) -> str:
    return line if len(line) <= most else line[: most - 1] + "…"


def _cell_runs(bundle: Mapping[str, Any]) -> dict[str, list[CellEntry]]:
    """Cell entries grouped by cell id, repeats together, in matrix order."""
    runs: dict[str, list[CellEntry]] = {}
    for entry in Bundle.of(bundle).cells:
        runs.setdefault(entry.id, []).append(entry)
    return runs


def cell_legend(bundle: Mapping[str, Any]) -> Sheet | None:
    """The short names the tables use, with the cell ids they stand for (None when they are the ids)."""
    return legend_sheet({cell_id: entries[0].varied or {} for cell_id, entries in _cell_runs(bundle).items()})


def legend_sheet(varied: dict[str, dict[str, Any]]) -> Sheet | None:
    """The ``Cells`` legend: each cell's short name (:func:`cell_codes`), its id and what its sweep varied, for the
    cells ``varied`` holds (id -> varied settings), in order; None when the short names are the ids."""
    codes = cell_codes(list(varied))
    if all(code == cell_id for cell_id, code in codes.items()):
        return None
    rows = []
    for cell_id, values in varied.items():
        rows.append([codes[cell_id], escape(cell_id), ", ".join(escape(setting(k, v)) for k, v in values.items())])
    columns = [Column("name", numeric=False, key=True), Column("cell", numeric=False)]
    if not any(r[2] for r in rows):
        rows = [r[:2] for r in rows]
    else:
        columns.append(Column("varied", numeric=False, keep=2))
    return Sheet("Cells", columns, rows)


#: Images the answers table shows at most on a terminal (a 100k-image run's table would take minutes to draw).
ANSWER_ROWS = 200
#: ... and in report.html (a page of 100,000 rows is megabytes a browser struggles with). ``--format json``
#: has every image, the bundle every answer.
HTML_ANSWER_ROWS = 5000


def answers_sheet(bundle: Mapping[str, Any], max_rows: int | None = ANSWER_ROWS, by_field: bool = True) -> Sheet:
    """Rows: images with their label (the first ``max_rows``; None: all); columns: each cell's final answer
    (first repeat). ``by_field`` (the terminal's table): a JSON object one ``key: value`` field a line, each whole,
    only the wrong fields marked; else (``--format json``, markdown) whole, as compact JSON."""
    runs = _cell_runs(bundle)
    codes = cell_codes(list(runs))
    left_out = ""
    if by_field and len(runs) > MAX_CHART_CELLS:  # the terminal: 500 columns would be 70 tables of 200 rows
        chosen = chart_cells(bundle)
        left_out = f"columns: the {len(chosen.shown)} cells the charts draw ({chosen.note(codes)})"
        runs = {cell: runs[cell] for cell in chosen.shown}
    items = Bundle.of(bundle).item_entries
    answer_type = task_answer_type(bundle)
    # figures are right-aligned and never wrapped; text, choices and JSON objects wrap like names
    numeric = answer_type in (None, "integer", "number", "boolean")
    lines = by_field and answer_type == "json"  # a JSON object's fields one a line, each whole
    columns = [Column("image", numeric=False, key=True), Column("label", numeric=numeric, key=True, lines=lines)]
    columns += [Column(codes[cell_id], numeric=numeric, lines=lines) for cell_id in runs]
    rows = []
    for item in items if max_rows is None else items[:max_rows]:
        several = acceptable(item.label, answer_type)
        label = " | ".join(map(_compact_text, several)) if several else item.label
        row = [escape(item.id), escape(label if several else _answer_text(label) if lines else _compact_text(label))]
        for entries in runs.values():
            answer = entries[0].answers.get(item.id)
            if answer is None:
                row.append("")
            elif answer.error is not None:
                row.append("[red]err[/red]")
            else:
                ok = item.label is None or matches(answer.value, item.label, answer_type)
                if lines:
                    row.append(_marked(answer.value, item.label, answer_type, ok))
                else:
                    shown = escape(_compact_text(answer.value))
                    row.append(shown if ok else f"[yellow]{shown}[/yellow]")
        rows.append(row)
    flat = [c for row in rows for c in row[2:]]
    notes = [
        note
        for mark, note in (
            ("[yellow]", "[yellow]yellow[/yellow]: differs from the label"),
            ("[red]", "[red]err[/red]: no answer (see Failed items)"),
        )
        if any(mark in c for c in flat)
    ]
    notes = ["; ".join(notes)] if notes else []
    if len(rows) < len(items):
        where = "report.html has them all" if len(items) <= HTML_ANSWER_ROWS else "--format json has them all"
        notes.append(f"the first {len(rows):,} of {len(items):,} images; {where}")
    notes += [left_out] if left_out else []
    return Sheet("Answers per image", columns, rows, notes)


def _with_ci(est: Estimate, spec: str, none: str = "-") -> str:
    if est.mean is None:
        return none
    return format(est.mean, spec) + (f" ± {est.ci95:{spec}}" if est.ci95 is not None else "")


#: The per-cell table's columns: (header, keep). keep 0 always shows; the highest goes first when space is short.
_CELL_COLUMNS = [
    ("wall s", 0),
    ("p50 s", 1),
    ("p95 s", 4),
    ("p99 s", 5),
    ("ttft p50", 1),  # time to first token: shown only when a cell streamed
    ("ttft p95", 4),
    ("img/s", 2),
    ("tok in", 3),
    ("tok out", 4),
    ("tok think", 5),
    ("cost $", 0),
    ("$/1k img", 2),
    ("think $%", 5),  # thinking's share of the cost: shown only when some cell paid for thinking
    ("MAE", 0),
    ("exact", 0),
    ("fields", 0),  # json tasks only: the share of the label's fields right
    ("errors", 0),
]


def cells_sheet(bundle: Mapping[str, Any]) -> Sheet:
    """One row per cell: time, latency, throughput, tokens, cost and accuracy (means over repeats, ± 95% CI)."""
    stats = cell_stats(bundle)
    codes = cell_codes([c.cell_id for c in stats])
    repeats = max((c.repeats for c in stats), default=1)
    numeric = numeric_task(bundle)
    title = "Per cell" + (f" (mean ± 95% CI over {repeats} repeats)" if repeats > 1 else "")
    streamed = any(c.metric("ttft_p50_s") is not None for c in stats)
    json_task = task_answer_type(bundle) == "json"
    omit = {
        h
        for h, out in (
            ("ttft p50", not streamed),
            ("ttft p95", not streamed),
            ("MAE", not numeric),
            ("fields", not json_task),
            ("think $%", not any(_thinking_share(c) for c in stats)),
        )
        if out
    }
    shown = [i for i, (head, _) in enumerate(_CELL_COLUMNS) if head not in omit]
    columns = [Column("cell", numeric=False, key=True)]
    columns += [Column(_CELL_COLUMNS[i][0], keep=_CELL_COLUMNS[i][1]) for i in shown]
    rows, nothing, unpriced = [], False, False
    for cell in stats:
        s = cell.metric
        unfinished = sorted(set(cell.statuses) - {"complete"})
        errors = sum(e.summary.errors for e in Bundle.of(bundle).cells if e.id == cell.cell_id)
        answered = (s("items") or 0) - (s("errors") or 0) > 0
        nothing |= not answered
        unpriced |= answered and cell.cost_usd.mean is None
        replayed = s("replayed")  # answers replayed from an earlier run: its wall time did not pay for them
        flag = ", ".join(
            unfinished
            + ([] if answered else ["nothing answered"])
            + ([f"{replayed:,.0f} replayed"] if replayed else [])
        )
        rows.append(
            [
                escape(codes[cell.cell_id]) + (f" [red]({flag})[/red]" if flag else ""),
            ]
            + [
                row[i]
                for row in [
                    [
                        _with_ci(cell.wall_s, ".2f") if not replayed else "-",
                        _fmt(s("latency_p50_s") if answered else None, ".3f"),
                        _fmt(s("latency_p95_s") if answered else None, ".3f"),
                        _fmt(s("latency_p99_s") if answered else None, ".3f"),
                        _fmt(s("ttft_p50_s") if answered else None, ".3f"),
                        _fmt(s("ttft_p95_s") if answered else None, ".3f"),
                        _fmt(s("images_per_s") if answered else None, ".1f"),
                        _fmt(s("input_tokens"), ".0f"),
                        _fmt(s("output_tokens"), ".0f"),
                        _fmt(s("thinking_tokens"), ".0f"),
                        _with_ci(cell.cost_usd, ".4f", none="?" if answered else "-"),
                        _fmt(s("cost_per_1k_images_usd"), ".3f", none="?" if answered else "-"),
                        _fmt(_thinking_share(cell), ".0%"),
                        _fmt(s("mae") if answered else None, ".2f"),
                        _fmt(s("exact_match") if answered else None, ".0%"),
                        _fmt(s("field_match") if answered else None, ".0%"),
                        _fmt(errors) if not errors else f"[red]{errors}[/red]",
                    ]
                ]
                for i in shown
            ]
        )
    notes = []
    if unpriced:
        notes.append("cost ?: the model has no known price (add a pricing: row to the config)")
    if nothing:
        notes.append(
            "nothing answered: every item of the cell failed, so it has no latency, throughput or cost to show"
        )
    return Sheet(title, columns, rows, notes)


def _thinking_share(cell: CellStats) -> float | None:
    """Thinking's share of the cell's cost (None: unknown, or nothing spent)."""
    cost, thinking = cell.metric("cost_usd"), cell.metric("thinking_cost_usd")
    return thinking / cost if cost and thinking is not None else None


def filter_lines(bundle: Mapping[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """One line per cell whose strategy reported a tier-1 filter (adaptive)."""
    names = names or {}
    lines = []
    for entry in Bundle.of(bundle).cells:
        f = entry.extra.get("tier1_filter")
        if f:
            tp, fp, fn = f["true_positives"], f["false_positives"], f["false_negatives"]
            name = escape(names.get(entry.id, entry.id))
            lines.append(
                f"{name}: tier 1 sent {entry.extra['tier2_items']} of {entry.summary.item_count} "
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

    def sheet(self) -> Sheet:
        """As a terminal sheet: the first column names the row; the others are figures."""
        columns = [Column(self.head[0], numeric=False, key=True)] + [Column(h) for h in self.head[1:]]
        rows = [[escape(r[0]), *r[1:]] for r in self.rows]
        return Sheet(self.title, columns, rows, [self.caption] if self.caption else [])


def accuracy_rows(
    bundle: Mapping[str, Any], names: dict[str, str] | None = None, registry: Registry | None = None
) -> Rows:
    """Each cell's mean of each of the task's scorers (the primary first), MAE on numeric tasks, exact match where
    no scorer shows it, each with a 95% bootstrap interval over images, and the scorers' figures worth a glance
    (macro-F1, balanced accuracy, whole objects). A bundle without scores (from before scorers, or naming a scorer
    not installed) shows exact match, MAE and fields right as before, with a caption saying why."""
    names = names or short_names(list(_cell_runs(bundle)))
    numeric, json_task = numeric_task(bundle), task_answer_type(bundle) == "json"
    found = bundle_scores(bundle, registry)
    if found.scorers is None:
        rows = []
        for cell in _cell_runs(bundle):
            got = accuracy_intervals(bundle, cell)
            rows.append(
                [names[cell], str(got["exact"].n)]
                + ([got["mae"].text(".2f")] if numeric else [])
                + [_share(got["exact"])]
                + ([_share(got["fields"]) if "fields" in got else "-"] if json_task else [])
            )
        head = ["cell", "images"] + (["MAE"] if numeric else []) + ["exact match"] + (["fields"] if json_task else [])
        return Rows("Accuracy, 95% interval over images", head, rows, found.note or "")
    keys = found.keys
    exact = not shows_exact(found)
    rows = []
    runs = _cell_runs(bundle)
    for cell in runs:
        got = accuracy_intervals(bundle, cell)
        scores = found.cells.get(cell)
        row = [names[cell], str(got["exact"].n)]
        row += [got["mae"].text(".2f")] if numeric else []
        row += [_share(interval(list(scores.values[k].values()))) if scores else "-" for k in keys]
        row += [_share(got["exact"])] if exact else []
        row += [text for head, text in glance(found, cell, exact) if not (numeric and head.endswith("MAE"))]
        if not answered_any(runs[cell]):  # failed, not scored: a 0% with an interval would read as a measurement
            row = [f"{names[cell]} (failed: nothing answered)", row[1]] + ["-"] * (len(row) - 2)
        rows.append(row)
    first = next(iter(_cell_runs(bundle)), None)
    heads = [head for head, _ in glance(found, first, exact)]
    head = ["cell", "images"] + (["MAE"] if numeric else []) + keys + (["exact match"] if exact else [])
    head += [h for h in heads if not (numeric and h.endswith("MAE"))]
    return Rows(f"Scores, 95% interval over images (primary: {found.primary})", head, rows, judge_note(bundle))


def answered_any(entries: Sequence[CellEntry]) -> bool:
    """Whether a cell (its entries, every repeat) answered any item."""
    return any((e.summary.metric("items") or 0) > (e.summary.metric("errors") or 0) for e in entries)


def judge_note(bundle: Mapping[str, Any]) -> str:
    """What the task's LLM judges asked and cost, over every cell: apart from the cells' own figures."""
    totals: dict[str, list[Any]] = {}
    for entry in Bundle.of(bundle).cells:
        for key, figures in (entry.summary.get("scores") or {}).items():
            judge = figures.get("judge") if isinstance(figures, Mapping) else None
            if judge:
                totals.setdefault(key, []).append(judge)
    parts = []
    for key, judged in totals.items():
        costs = [j.get("cost_usd") for j in judged]
        cost = "unpriced" if None in costs else f"${sum(costs):.4f}"
        failed = sum(j.get("errors", 0) for j in judged)
        parts.append(
            f"{key}: the judge's {sum(j.get('requests', 0) for j in judged)} requests cost {cost}"
            + (f", {failed} items not scored" if failed else "")
            + " (not in the cells' cost)"
        )
    return "; ".join(parts)


def group_rows(
    bundle: Mapping[str, Any],
    field: str,
    names: dict[str, str] | None = None,
    registry: Registry | None = None,
) -> Rows | None:
    """Each scorer's mean per cell, broken down by the row field ``field`` (items without it: "(none)"); None
    without scores."""
    found = bundle_scores(bundle, registry)
    if found.scorers is None:
        return None
    cells = list(_cell_runs(bundle))
    names = names or short_names(cells)
    keys = found.keys
    head = [field, "images"]
    for cell in cells:
        for key in keys:
            head.append(
                " ".join(p for p in (names[cell] if len(cells) > 1 else "", key if len(keys) > 1 else "") if p) or key
            )
    rows = []
    for group, ids in groups(bundle, field).items():
        row = [group, ""]
        counted = 0
        for cell in cells:
            for key in keys:
                mean, n = group_means(found, cell, key, ids)
                counted = max(counted, n)
                row.append(_fmt(mean, ".0%"))
        row[1] = str(counted)
        rows.append(row)
    return Rows(f"Scores by {field} (mean over labelled images)", head, rows)


def _share(i: Interval) -> str:
    if i.value is None:
        return "-"
    if i.low is None or i.high is None:
        return f"{i.value:.0%} (n={i.n})"
    return f"{i.value:.0%} [{i.low:.0%}, {i.high:.0%}]"


def difference_rows(
    bundle: Mapping[str, Any], names: dict[str, str] | None = None, registry: Registry | None = None
) -> Rows | None:
    """Each cell against the most accurate one (by the primary scorer's mean; without scores, by MAE or exact
    match): that figure and p50 latency, each with its test."""
    found = bundle_scores(bundle, registry)
    vs_best = versus_best(bundle, found if found.scorers is not None else None)
    if not vs_best:
        return None
    names = names or short_names(list(_cell_runs(bundle)))
    best = vs_best[0].best
    if found.scorers is not None:
        metric = str(found.primary)
        spec = ".0%"
        score = found.cells[best].mean(metric) if best in found.cells else None
        used = sorted({d.test for vs in vs_best for d in vs.differences if d.metric == metric})
        about = f"{metric}: {' / '.join(used) or 'no images to pair'} (its per-image scores)"
    else:
        metric = "MAE" if numeric_task(bundle) else "exact match"
        spec = ".2f" if metric == "MAE" else ".0%"
        score = accuracy_intervals(bundle, best)["mae" if metric == "MAE" else "exact"].value
        about = f"{metric}: Wilcoxon signed-rank (McNemar exact for exact match, one repeat)"
    cost = {c.cell_id: cost_per_1k(c) for c in cell_stats(bundle)}
    # On a numeric task the verdict weighs the absolute error too: its test is shown beside the primary score's.
    mae = metric != "MAE" and numeric_task(bundle)
    latency = [d for vs in vs_best for d in vs.differences if d.metric == "latency p50 s"]
    tested = any(d.p is not None for d in latency)
    rows = []
    for vs in vs_best:
        by = {d.metric: d for d in vs.differences}
        acc, lat, err = by.get(metric), by.get("latency p50 s"), by.get("MAE")
        a, b = cost.get(best), cost.get(vs.cell)
        row = [names[vs.cell], _fmt(acc.b, spec) if acc else "-", *_test_cells(acc)]
        if mae:
            row += [_fmt(err.b, ".2f") if err else "-", *_test_cells(err)]
        row += [_cost_ratio(a, b), _fmt(lat.b, ".3f") if lat else "-"]
        rows.append(row + (list(_test_cells(lat)) if tested else []))
    if tested:
        said = "latency: Mann-Whitney U over the requests of cells that ran interleaved"
    else:
        said = "latency: not tested, the cells ran one after another (the load differs between them)"
    holm = " (Holm-adjusted over the cells tested)" if len(vs_best) > 1 and "Holm" not in about else ""
    if mae:
        about += "; MAE: Wilcoxon signed-rank on the absolute errors" + (", Holm-adjusted" if len(vs_best) > 1 else "")
    head = ["cell", metric, "p", "real?"] + (["MAE", "p ", "real? "] if mae else [])
    head += ["cost", "p50 s"] + (["p  ", "real?  "] if tested else [])
    return Rows(
        f"Against the most accurate cell, {names[best]} ({metric} {_fmt(score, spec)}; paired on the same images, "
        "5% level)",
        head,
        rows,
        f"{about}{holm}; cost: per 1,000 images, as a multiple of the most accurate cell's; {said}",
    )


def _cost_ratio(best: float | None, other: float | None) -> str:
    if best is None or other is None:
        return "?"
    if best == 0:
        return "x1.00" if other == 0 else "more"
    return ratio_text(other / best)


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


def failures(bundle: Mapping[str, Any]) -> list[Failures]:
    """Failed items grouped by cell and error kind (all repeats), with the first message of each group."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in Bundle.of(bundle).cells:
        for answer in entry.answers.values():
            if answer.error:
                kind, _, message = answer.error.partition(": ")
                groups.setdefault((entry.id, kind), []).append(message or kind)
    return [Failures(cell, kind, len(msgs), msgs[0]) for (cell, kind), msgs in groups.items()]


def failures_sheet(found: list[Failures], codes: dict[str, str]) -> Sheet:
    columns = [
        Column("cell", numeric=False, key=True),
        Column("error", numeric=False),
        Column("items"),
        Column("first message", numeric=False),
    ]
    rows = [[escape(codes.get(f.cell, f.cell)), escape(f.kind), str(f.count), escape(f.first)] for f in found]
    return Sheet("Failed items", columns, rows)


def sheets(
    bundle: Mapping[str, Any],
    max_answer_rows: int | None = ANSWER_ROWS,
    by_field: bool = True,
    group_by: str | None = None,
) -> list[Sheet]:
    """Every table of the terminal report, in order (the answers table's first ``max_answer_rows`` images; JSON
    answers ``by_field`` as ``answers_sheet`` says; scores by the row field ``group_by``, else the task's)."""
    runs = list(_cell_runs(bundle))
    codes = cell_codes(runs)
    out = [s for s in (cell_legend(bundle),) if s is not None]
    out += [answers_sheet(bundle, max_answer_rows, by_field), cells_sheet(bundle)]
    out += [s for s in (prices_sheet(bundle),) if s is not None]
    if any(item.label is not None for item in Bundle.of(bundle).item_entries):
        out.append(accuracy_rows(bundle, codes).sheet())
        field = group_field(bundle, group_by)
        by_group = group_rows(bundle, field, codes) if field else None
        if by_group is not None:
            out.append(by_group.sheet())
    differences = difference_rows(bundle, codes)
    if differences is not None:
        out.append(differences.sheet())
    found = failures(bundle)
    if found:
        out.append(failures_sheet(found, codes))
    return out


def status_line(bundle: Mapping[str, Any]) -> str:
    bundle = Bundle.of(bundle)
    runs = _cell_runs(bundle)
    found = failures(bundle)
    failed = sum(f.count for f in found)
    line = f"run {bundle.run_id} ({bundle.status}): {len(bundle.item_entries)} images, {len(runs)} cells"
    if failed:
        line += f", [red]{failed} failed item(s)[/red]"
    if replayed := replay_note(bundle):
        line += ", " + escape(replayed)
    if bundle.simulated:
        line += ", " + simulated_note(bundle)
    return line


def replay_note(bundle: Mapping[str, Any]) -> str:
    """How many requests were answered from an earlier run and what they did not cost again ("" for none)."""
    bundle = Bundle.of(bundle)
    replayed = sum(e.summary.get("replayed") or 0 for e in bundle.cells)
    if not replayed:
        return ""
    requests = sum(e.summary.requests for e in bundle.cells) + replayed
    saved = sum(e.summary.get("replayed_cost_usd") or 0.0 for e in bundle.cells)
    source = Path(str(bundle.config.get("replay") or "an earlier run"))
    name = source.parent.name if source.name == "bundle.json" else source.name
    return (
        f"{replayed:,} of {requests:,} requests replayed from {name} (${saved:.4f} not spent again; not in "
        "latency or throughput)"
    )


def verdict_lines(
    bundle: Mapping[str, Any], registry: Registry | None = None, names: dict[str, str] | None = None
) -> list[str]:
    """The verdict first: which cell to pick and why, and the cells no other beats on every count (none for a run
    of one cell); cells by ``names`` (default: the terminal's short codes)."""
    from visionbench.report.verdict import pareto_lines, verdict

    names = names or cell_codes(list(_cell_runs(bundle)))
    found = bundle_scores(bundle, registry)
    got = verdict(bundle, found if found.scorers is not None else None, names)
    if got is None:
        return []
    pareto = pareto_lines([names.get(c, c) for c in got.pareto])
    return [f"[bold]Verdict[/bold]: {escape(got.why)}", *map(escape, pareto)]


def simulated_note(bundle: Mapping[str, Any]) -> str:
    """SIMULATED, with the emulator's time scale and what the times shown are."""
    return "[bold]SIMULATED[/bold]" + escape(time_scale_words(bundle))


def time_scale(bundle: Mapping[str, Any]) -> float | str | None:
    """The emulator's time scale the run was made at (``Bundle.time_scale``: a number, "default" for the
    profiles' own, None when not emulated)."""
    return Bundle.of(bundle).time_scale


def next_steps(bundle: Mapping[str, Any], run_dir: str) -> list[str]:
    """Where the bundle is and the command that carries the run on, for a run that did not complete."""
    bundle = Bundle.of(bundle)
    status = bundle.status
    if status == "incomplete":
        return [
            "some items failed (see Failed items); to ask only those again:",
            f"  visionbench run --resume {run_dir} --retry-errors",
        ]
    if status in ("stopped", "interrupted", "failed", "running"):
        why = {"stopped": "over --max-cost", "interrupted": "interrupted", "failed": "the run broke off"}
        out = [f"{status} ({why.get(status, 'not finished')}); to finish it:"]
        out.append(f"  visionbench run --resume {run_dir}" + (" --max-cost USD" if status == "stopped" else ""))
        if bundle.error:
            out.insert(0, f"error: {bundle.error}")
        return out
    return []


FORMATS = ("table", "csv", "json", "markdown")


def print_report(
    bundle: Mapping[str, Any],
    console: Console | None = None,
    *,
    width: int | None = None,
    wide: bool = False,
    fmt: str = "table",
    group_by: str | None = None,
) -> None:
    """The run's tables on ``console``: fitted to ``width`` (default: the console's), every column with ``wide``;
    or as CSV (the per-cell table: one row per cell, full ids), JSON (every table) or Markdown (every table)."""
    console = console or Console()
    bundle = Bundle.of(bundle)
    found = sheets(bundle, None if fmt == "json" else ANSWER_ROWS, by_field=fmt == "table", group_by=group_by)
    if fmt == "csv":
        cells = cells_sheet(bundle)
        ids = [c.cell_id for c in cell_stats(bundle)]
        # every row says whether it was simulated, and at what time scale: a CSV travels without its report
        scale = time_scale(bundle)
        marks = ["yes" if bundle.simulated else "no", "" if scale is None else str(scale)]
        columns = [*cells.columns, Column("simulated", numeric=False), Column("time_scale", numeric=False)]
        cells = Sheet(cells.title, columns, [[cid, *row[1:], *marks] for cid, row in zip(ids, cells.rows)])
        console.file.write(to_csv(cells))
        return
    if fmt == "json":
        doc = {
            "run_id": bundle.run_id,
            "status": bundle.status,
            "simulated": bool(bundle.simulated),
            "time_scale": time_scale(bundle),
            "cells": cell_codes(list(_cell_runs(bundle))),
            "tables": [to_json(s) for s in found],
            "failures": [f.__dict__ for f in failures(bundle)],
        }
        console.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt == "markdown":
        console.file.write(f"{plain(status_line(bundle))}\n\n" + "\n".join(to_markdown(s) for s in found))
        return
    width = None if wide else (width or console.width)
    if wide:
        console = Console(
            file=console.file, width=100_000, force_terminal=console.is_terminal, no_color=console.no_color
        )
    console.print(status_line(bundle), width=width, highlight=False)
    for line in verdict_lines(bundle):
        console.print(line, width=width, highlight=False)
    for sheet in found:
        print_sheet(console, sheet, width)
    for line in filter_lines(bundle, cell_codes(list(_cell_runs(bundle)))):
        console.print(line, width=width, highlight=False)
    if bundle.simulated:
        console.print(
            "[bold]SIMULATED[/bold]: answers came from an emulator or a fake provider, not the real services",
            width=width,
            highlight=False,
        )
