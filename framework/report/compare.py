"""Several runs side by side: cells lined up by id, each metric per run with its change against the first run.

Also says when the runs are not comparable as they stand: different images, different price tables, a mix of
simulated and real answers, or a different task or preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from html import escape
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape as escape_markup

from visionbench.preprocessing import Preprocessing
from visionbench.report.cellnames import short_names
from visionbench.report.combined import cell_name, combined
from visionbench.report.scores import Found, bundle_scores, group_field, group_means, groups
from visionbench.report.significance import NOT_INTERLEAVED, Difference, differences
from visionbench.report.stats import CellStats, cell_stats, cost_per_1k, count_text, ratio_text
from visionbench.report.tables import Column, Sheet, print_sheet
from visionbench.report.verdict import Verdict, pareto_lines, verdict
from visionbench.results.model import Bundle
from visionbench.run.config import TaskSpec

#: (summary key, label, better): better is "lower" or "higher"
METRICS: list[tuple[str, str, str]] = [
    ("wall_s", "wall s", "lower"),
    ("latency_p50_s", "p50 latency s", "lower"),
    ("latency_p95_s", "p95 latency s", "lower"),
    ("ttft_p50_s", "p50 time to first token s", "lower"),
    ("ttft_p95_s", "p95 time to first token s", "lower"),
    ("images_per_s", "images/s", "higher"),
    ("input_tokens", "input tokens", "lower"),
    ("output_tokens", "output tokens", "lower"),
    ("thinking_tokens", "thinking tokens", "lower"),
    ("cost_usd", "cost $", "lower"),
    ("cost_per_1k_images_usd", "$ / 1k images", "lower"),
    ("mae", "MAE", "lower"),
    ("exact_match", "exact match", "higher"),
    ("errors", "errors / repeat", "lower"),
]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    status: str
    simulated: bool
    #: The emulator's time scale, as the runs table shows it ("-": not emulated).
    time_scale: str
    items: int
    repeats: int
    pricing_sha256: str


@dataclass(frozen=True)
class ItemOverlap:
    """Images of run ``run`` against the baseline, by content (sha256)."""

    run: int
    shared: int
    only_in_baseline: int
    only_in_run: int
    label_changes: int  # shared images whose label differs


@dataclass(frozen=True)
class MetricRow:
    key: str  # cell id (or strategy label when matched by label)
    metric: str
    label: str
    better: str
    values: list[float | None]  # per run; None = cell missing or figure unknown
    deltas: list[float | None]  # value - baseline value; None for the baseline and when either is unknown
    ratios: list[float | None]  # value / baseline value; None when unknown or the baseline is 0


@dataclass
class Comparison:
    runs: list[RunInfo]
    keys: list[str]  # cells in order of first appearance across runs
    presence: dict[str, list[bool]]  # key -> present in each run
    rows: list[MetricRow]
    items: list[ItemOverlap]
    flags: list[str] = field(default_factory=list)  # why the runs may not be comparable
    #: key -> per run (None for the baseline and where the cell is missing): the paired tests against the baseline
    tests: dict[str, list[list[Difference] | None]] = field(default_factory=dict)
    #: Which cell of which run to pick (``#N cell id``), by the run verdict's rules over every run's cells, its
    #: Pareto set by the names the sentence uses (None: one cell in all).
    verdict: Verdict | None = None

    def row(self, key: str, metric: str) -> MetricRow:
        return next(r for r in self.rows if r.key == key and r.metric == metric)

    def missing(self, key: str) -> list[str]:
        """Run ids where this cell is missing."""
        return [run.run_id for run, present in zip(self.runs, self.presence[key]) if not present]


def _metrics(stats: CellStats) -> dict[str, float | None]:
    out = {key: stats.metric(key) for key, _, _ in METRICS}
    out["wall_s"], out["cost_usd"] = stats.wall_s.mean, stats.cost_usd.mean
    out["cost_per_1k_images_usd"] = cost_per_1k(stats)
    if stats.metric("replayed"):  # answers replayed from an earlier run (run --replay) were not timed by this one
        out["wall_s"] = None
    return out


#: How ``--by label`` names a cell, from the loosest to the fullest: the first that names one cell in every run.
LABEL_KEYS = ("{label}", "{provider}/{label}", "{provider}/{model}/{label}")


def label_key(bundles: Sequence[Mapping[str, Any]]) -> str:
    """The loosest of LABEL_KEYS that tells every run's cells apart: the label alone when no label repeats, the
    provider and label when labels repeat across providers, the model too when they repeat across models."""
    for key in LABEL_KEYS:
        if all(len({key.format(**_parts(s)) for s in cell_stats(b)}) == len(cell_stats(b)) for b in bundles):
            return key
    return LABEL_KEYS[-1]


def _parts(stats) -> dict[str, str]:
    return {"provider": stats.provider, "model": stats.model, "label": stats.label}


def compare(
    bundles: Sequence[Mapping[str, Any]], by: Literal["id", "label"] = "id", group_by: str | None = None
) -> Comparison:
    """Line up the cells of ``bundles`` (the first is the baseline) by cell id, or by label (qualified by provider,
    then model, only as far as needed to name one cell per run: see ``label_key``), e.g. across models. Each
    scorer's mean is a row (``score:KEY``) with its paired test; ``group_by`` (else the baseline task's) breaks
    each down by a row field (``score:KEY:FIELD=VALUE``)."""
    if not bundles:
        raise ValueError("compare needs at least one bundle")
    bundles = [Bundle.of(b) for b in bundles]
    found = [bundle_scores(b) for b in bundles]
    scored = all(f.scorers is not None for f in found)
    keys_scored = list(dict.fromkeys(k for f in found for k in f.keys)) if scored else []
    field = group_field(bundles[0], group_by) if scored else None
    key_format = label_key(bundles) if by == "label" else None
    runs, per_run, ids = [], [], []
    for b in bundles:
        stats = cell_stats(b)
        table, cell_ids = {}, {}
        for s in stats:
            key = s.cell_id if key_format is None else key_format.format(**_parts(s))
            if key in table:
                raise ValueError(f"run {b.run_id}: {key!r} names several cells; compare by id instead")
            table[key] = _metrics(s)
            cell_ids[key] = s.cell_id
        per_run.append(table)
        ids.append(cell_ids)
        runs.append(
            RunInfo(
                b.run_id,
                b.name,
                b.status,
                bool(b.simulated),
                "-" if (scale := b.time_scale) is None else f"{scale:g}" if isinstance(scale, float) else scale,
                len(b.item_entries),
                max((s.repeats for s in stats), default=0),
                b.pricing.sha256,
            )
        )
    keys = list(dict.fromkeys(k for table in per_run for k in table))
    rows = []
    for key in keys:
        for metric, label, better in METRICS:
            values = [table[key][metric] if key in table else None for table in per_run]
            base = values[0]
            deltas = [None] + [None if v is None or base is None else v - base for v in values[1:]]
            ratios = [None] + [None if v is None or not base else v / base for v in values[1:]]
            if (metric.startswith("ttft_") or metric == "mae") and all(v is None for v in values):
                continue  # time to first token exists only for streamed cells, MAE only for numeric answers
            rows.append(MetricRow(key, metric, label, better, values, deltas, ratios))
        rows += _score_rows(key, bundles, found, ids, keys_scored, field)
    items, flags = _differences(bundles, runs)
    flags += [f"run {b.run_id}: {f.note}" for b, f in zip(bundles, found) if f.note]
    presence = {key: [key in table for table in per_run] for key in keys}
    for key in keys:
        if not all(presence[key]):
            flags.append(
                f"cell {key} is missing from " + ", ".join(r.run_id for r, p in zip(runs, presence[key]) if not p)
            )
    tests: dict[str, list[list[Difference] | None]] = {}
    for key in keys:
        tests[key] = [None]
        for n in range(1, len(bundles)):
            if key in ids[0] and key in ids[n]:
                a, b = found[0].cells.get(ids[0][key]), found[n].cells.get(ids[n][key])
                paired = [
                    (k, a.values[k], b.values[k], a.binary[k] and b.binary[k])
                    for k in keys_scored
                    if a and b and k in a.values and k in b.values
                ]
                tests[key].append(differences(bundles[0], ids[0][key], bundles[n], ids[n][key], paired))
                flags += [
                    f"cell {key}: {d.metric} {d.a:.3g} vs {d.b:.3g} in {runs[n].run_id}, but n={d.n} is too small "
                    "for any difference to reach p<0.05"
                    for d in tests[key][-1] or []
                    # untested by design (latency across runs), not for want of images: nothing to warn about
                    if not d.detectable
                    and d.test != NOT_INTERLEAVED
                    and d.a is not None
                    and d.b is not None
                    and d.a != d.b
                ]
            else:
                tests[key].append(None)
    return Comparison(runs, keys, presence, rows, items, flags, tests, _verdict_across(bundles, found))


def _verdict_across(bundles: list[Bundle], found: list[Found]) -> Verdict | None:
    """The verdict over every run's cells at once (``#N cell``), weighed as one run's would be, by each run's own
    scores (``found``; scored again only when a run has none). Latency is never tested across runs, so the joined
    bundle carries no records."""
    joined = combined(bundles)
    if all(f.scorers is not None for f in found):
        cells = {cell_name(n, cell): scores for n, f in enumerate(found) for cell, scores in f.cells.items()}
        found_joined = Found(found[0].scorers, cells)
    else:
        found_joined = bundle_scores(joined)
    short = short_names(list(dict.fromkeys(e.id for b in bundles for e in b.cells)))
    names = {cell_name(n, e.id): cell_name(n, short[e.id]) for n, b in enumerate(bundles) for e in b.cells}
    got = verdict(joined, found_joined if found_joined.scorers is not None else None, names)
    return got and replace(got, pareto=[names.get(c, c) for c in got.pareto])  # shown as the sentence names them


def verdict_lines(comparison: Comparison) -> list[str]:
    """The verdict across the runs, its Pareto set, and what it cannot weigh, in plain text."""
    got = comparison.verdict
    if got is None:
        return []
    lines = [f"Verdict across the runs: {got.why}", *pareto_lines(got.pareto)]
    if len(comparison.runs) > 1:
        lines.append(
            "Cells of different runs are paired by item id; their latencies are never tested against each other "
            "(the machine's and the services' load differed between runs)"
        )
    return lines


def _score_rows(
    key: str,
    bundles: list[Bundle],
    found: list[Found],
    ids: list[dict[str, str]],
    scorer_keys: list[str],
    field: str | None,
) -> list[MetricRow]:
    """A cell's rows of each scorer's mean per run, then (``field``) each by the baseline's groups of that field."""
    rows = []
    parts: list[tuple[str, str, list[list[str]] | None]] = [("", "", None)]
    if field:
        per_run = [groups(b, field) for b in bundles]
        for g in dict.fromkeys(g for table in per_run for g in table):
            parts.append((f":{field}={g}", f", {field} {g}", [table.get(g, []) for table in per_run]))
    for suffix, where, members in parts:
        for scorer in scorer_keys:
            values: list[float | None] = []
            for n, (f, cells) in enumerate(zip(found, ids)):
                cell = cells.get(key)
                if cell is None or cell not in f.cells:
                    values.append(None)
                elif members is None:
                    values.append(f.cells[cell].mean(scorer))
                else:
                    values.append(group_means(f, cell, scorer, members[n])[0])
            base = values[0]
            deltas = [None] + [None if v is None or base is None else v - base for v in values[1:]]
            ratios = [None] + [None if v is None or not base else v / base for v in values[1:]]
            primary = " (primary)" if scorer == found[0].primary and not suffix else ""
            label = f"{scorer}{primary}{where}"
            rows.append(MetricRow(key, f"score:{scorer}{suffix}", label, "higher", values, deltas, ratios))
    return rows


def _differences(bundles: list[Bundle], runs: list[RunInfo]) -> tuple[list[ItemOverlap], list[str]]:
    base, flags, overlaps = bundles[0], [], []
    positions: dict[str, list[int]] = {}
    for n, r in enumerate(runs, start=1):
        positions.setdefault(r.run_id, []).append(n)
    flags += [
        f"run {rid} is given {len(at)} times (runs {', '.join(map(str, at))}): it is compared with itself, so its "
        "differences are all 0"
        for rid, at in positions.items()
        if len(at) > 1
    ]
    base_items = {i.sha256: i.label for i in base.item_entries}
    for n, b in enumerate(bundles[1:], start=1):
        other = {i.sha256: i.label for i in b.item_entries}
        shared = base_items.keys() & other.keys()
        overlap = ItemOverlap(
            n,
            len(shared),
            len(base_items.keys() - other.keys()),
            len(other.keys() - base_items.keys()),
            sum(1 for sha in shared if base_items[sha] != other[sha]),
        )
        overlaps.append(overlap)
        rid = b.run_id
        if overlap.only_in_baseline or overlap.only_in_run:
            flags.append(
                f"images differ: {rid} shares {overlap.shared} with the baseline, {overlap.only_in_baseline} "
                f"only in the baseline, {overlap.only_in_run} only in {rid}"
            )
        if overlap.label_changes:
            flags.append(f"labels differ on {overlap.label_changes} shared images in {rid}")
        if b.pricing.sha256 != base.pricing.sha256:
            flags.append(
                f"price tables differ: {rid} used pricing {b.pricing.version} "
                f"(sha256 {b.pricing.sha256[:12]}), baseline {base.pricing.version} "
                f"(sha256 {base.pricing.sha256[:12]})"
            )
        for part in ("task", "preprocessing"):
            if changed := _changed(_as_read(base, part), _as_read(b, part)):
                flags.append(f"{part} differs in {rid}: {changed}")
        if cells := _cell_preprocessing_changes(base, b):
            flags.append(f"preprocessing differs in {rid} for cell(s) {cells}")
    if len({r.simulated for r in runs}) > 1:
        flags.append("mix of simulated and real runs; simulated: " + ", ".join(r.run_id for r in runs if r.simulated))
    scales = [_time_scale(b) for b in bundles]
    if len(set(scales)) > 1:
        flags.append(
            "emulator time scales differ; times are shown in each run's modelled seconds (wall / time scale): "
            + ", ".join(f"{r.run_id} {_scale_text(x)}" for r, x in zip(runs, scales))
        )
    flags += [f"run {r.run_id} is {r.status}, not complete" for r in runs if r.status != "complete"]
    return overlaps, flags


def _as_read(bundle: Bundle, part: str) -> dict[str, Any]:
    """The config's ``task`` or ``preprocessing`` as the run read it: a key an older writer left out (``decimal``,
    ``scorers``... did not exist yet) at its default, which is how that run behaved."""
    defaults = {f.alias or name: f.default for name, f in _SPECS[part].model_fields.items() if not f.is_required()}
    return {**defaults, **(bundle.config.get(part) or {})}


_SPECS: dict[str, type[BaseModel]] = {"task": TaskSpec, "preprocessing": Preprocessing}


def _time_scale(bundle: Bundle) -> float | str | None:
    """The emulator's time scale of a run: a number, "default" (emulated at the profiles' own), or None (real)."""
    return Bundle.of(bundle).time_scale


def _scale_text(scale: float | str | None) -> str:
    if scale is None:
        return "real time (not emulated)"
    return "at the profiles' time scale" if scale == "default" else f"x{scale:g}"


def _changed(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``key: old -> new`` for each key whose value differs."""
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _cell_preprocessing_changes(a: Bundle, b: Bundle) -> str:
    """Cells of both runs (same id) that ran at different preprocessing (a sweep's own per-cell settings)."""
    pa = {e.id: e.preprocessing for e in a.cells}
    pb = {e.id: e.preprocessing for e in b.cells}
    if a.config.get("preprocessing") != b.config.get("preprocessing"):
        return ""  # said above, for every cell
    return ", ".join(c for c in pa if c in pb and pa[c] != pb[c])


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric == "exact_match" or metric.startswith("score:"):
        return f"{value:.0%}"
    if metric.startswith("cost"):
        return f"{value:.4f}"
    return count_text(value) if metric.endswith("tokens") or metric in ("errors", "requests") else f"{value:.3g}"


def _delta(row: MetricRow, i: int) -> tuple[str, str | None]:
    """Text of the change against the baseline and whether it is "better", "worse" or None (no change/unknown)."""
    d, r = row.deltas[i], row.ratios[i]
    if d is None:
        return "", None
    if d == 0:
        return "=", None
    share = row.metric == "exact_match" or row.metric.startswith("score:")
    if share:
        text = f"{d:+.0%}".replace("%", " pt")
    elif row.metric.endswith("tokens"):
        text = ("+" if d > 0 else "-") + count_text(abs(d))
    else:
        text = f"{d:+.3g}"
    text += f" ({ratio_text(r)})" if r is not None else ""
    return text, "better" if (d < 0) == (row.better == "lower") else "worse"


def _grid(comparison: Comparison, key: str) -> tuple[list[str], list[list[tuple[str, str | None]]]]:
    """One cell's table: header, then per metric (text, style) pairs; style is "better", "worse", "missing" or None."""
    head = ["metric", f"#0 {comparison.runs[0].run_id}"]
    for n, r in enumerate(comparison.runs[1:], start=1):
        head += [f"#{n} {r.run_id}", f"change #{n}"]
    rows = []
    for row in (r for r in comparison.rows if r.key == key):
        cells: list[tuple[str, str | None]] = [(row.label, None)]
        for i, present in enumerate(comparison.presence[key]):
            cells.append((_fmt(row.values[i], row.metric), None) if present else ("missing", "missing"))
            if i:
                cells.append(_delta(row, i))
        rows.append(cells)
    scorers = [
        r.metric.removeprefix("score:") for r in comparison.rows if r.key == key and r.metric.startswith("score:")
    ]
    for metric in ("MAE", "exact match", *(k for k in scorers if ":" not in k), "latency p50 s"):
        cells = [(f"{metric}: real?", None), ("", None)]
        for found in comparison.tests.get(key, [None])[1:]:
            d = next((d for d in found or [] if d.metric == metric), None)
            cells += [(_verdict(d), None), ("", None)]
        if any(text for text, _ in cells[2:]):
            rows.append(cells)
    return head, rows


def _verdict(d: Difference | None) -> str:
    """A paired test, short: "p=0.4, no (n=4)"."""
    if d is None or d.p is None:
        return ""
    p = f"p={d.p:.2g}" if d.p >= 0.001 else "p<0.001"
    word = "yes" if d.significant else ("no" if d.detectable else "n too small")
    return f"{p}, {word} (n={d.n})"


def _simulated_words(comparison: Comparison) -> str:
    runs = [f"#{n} {r.run_id}" for n, r in enumerate(comparison.runs) if r.simulated]
    return (
        f"{', '.join(runs)} answered by an emulator or a fake provider, not the real services; an emulated run's "
        "times are its services' modelled seconds (wall seconds / its time scale, xN in the simulated column)"
    )


def _run_rows(comparison: Comparison) -> list[list[str]]:
    return [
        [
            str(n),
            r.run_id,
            r.name,
            r.status,
            ("yes" + (f", x{r.time_scale}" if r.time_scale != "-" else "")) if r.simulated else "no",
            str(r.items),
            str(r.repeats),
            r.pricing_sha256[:12],
        ]
        for n, r in enumerate(comparison.runs)
    ]


RUN_HEAD = ["#", "run", "config", "status", "simulated", "images", "repeats", "pricing sha256"]


def print_comparison(comparison: Comparison, console: Console | None = None, width: int | None = None) -> None:
    """The runs, the warnings, then one table per cell with each metric per run and its change, fitted to
    ``width`` (default: the console's): the runs are numbered #0, #1... as in the first table."""
    console = console or Console()
    width = width or console.width
    columns = [Column("#", key=True)] + [
        Column(h, numeric=False, keep=2 if h == "pricing sha256" else 0) for h in RUN_HEAD[1:]
    ]
    rows = [[escape_markup(c) for c in row] for row in _run_rows(comparison)]
    print_sheet(console, Sheet("Runs (#0 is the baseline)", columns, rows), width)
    for n, line in enumerate(verdict_lines(comparison)):
        console.print(
            ("[bold]" + escape_markup(line).replace(":", ":[/bold]", 1)) if n == 0 else escape_markup(line),
            highlight=False,
            width=width,
        )
    if any(r.simulated for r in comparison.runs):
        console.print(
            f"[bold]SIMULATED[/bold]: {escape_markup(_simulated_words(comparison))}", highlight=False, width=width
        )
    for flag in comparison.flags:
        console.print(f"[yellow]warning:[/yellow] {escape_markup(flag)}", highlight=False, width=width)
    style = {"better": "green", "worse": "red", "missing": "dim"}
    for key in comparison.keys:
        head, rows = _grid(comparison, key)
        head = [h.split(" ")[0] if h.startswith("#") else h for h in head]
        columns = [Column(head[0], numeric=False, key=True)] + [Column(h) for h in head[1:]]
        cells = [
            [f"[{style[v]}]{escape_markup(t)}[/{style[v]}]" if v else escape_markup(t) for t, v in r] for r in rows
        ]
        print_sheet(console, Sheet(key, columns, cells), width)


def comparison_html(comparison: Comparison) -> str:
    """The same as ``print_comparison``, as one self-contained HTML page (inline CSS, no scripts, no links)."""
    from visionbench.report.html import CSS, html_table

    css = CSS + "td.better{color:#1e7b3b} td.worse{color:#b3261e} td.missing{color:#8c8c8c}"
    body = ["<h1>visionbench: comparison</h1>"]
    lines = verdict_lines(comparison)
    if lines:
        head, *rest = lines
        label, _, why = head.partition(": ")
        body.append(
            f'<div class="banner verdict"><b>{escape(label)}</b>: {escape(why)}'
            + "".join(f"<br>{escape(x)}" for x in rest)
            + "</div>"
        )
    if any(r.simulated for r in comparison.runs):
        body.append(f'<div class="banner sim"><b>SIMULATED</b>: {escape(_simulated_words(comparison))}</div>')
    body += ["<h2>Runs (the first is the baseline)</h2>", html_table(RUN_HEAD, _run_rows(comparison), left=3)]
    body += [f'<div class="banner sim">warning: {escape(flag)}</div>' for flag in comparison.flags]
    for key in comparison.keys:
        head, rows = _grid(comparison, key)
        body += [f"<h2>{escape(key)}</h2>", html_table(head, [[(t, v or "") for t, v in cells] for cells in rows])]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>visionbench comparison</title>'
        f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
