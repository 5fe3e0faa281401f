"""One self-contained HTML page per run: banner, config, environment, per-cell figures, answers and charts.

No external assets and no JavaScript: CSS is inline and the charts are embedded as base64 PNG data URIs, so the
file can be mailed, archived or opened offline as is.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from visionbench.report.cellnames import cell_codes, setting, short_names
from visionbench.report.chart_cells import MAX_CHART_CELLS, chart_cells
from visionbench.report.explorer import CSS as EXPLORER_CSS
from visionbench.report.explorer import explorer_data, explorer_html
from visionbench.report.figures import time_scale_words
from visionbench.report.gallery import CSS as GALLERY_CSS
from visionbench.report.gallery import gallery_html
from visionbench.report.prices import prices_sheet
from visionbench.report.scores import Found, bundle_scores, group_field
from visionbench.report.significance import numeric_task
from visionbench.report.stats import CellStats, agreement, cell_stats, cost_per_1k
from visionbench.report.tables import Sheet
from visionbench.report.terminal import (
    HTML_ANSWER_ROWS,
    Rows,
    accuracy_rows,
    answered_any,
    difference_rows,
    group_rows,
    replay_note,
)
from visionbench.results.model import Bundle
from visionbench.results.scoring import acceptable, matches, task_answer_type

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px 32px;color:#1d2733;font-size:14px}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe3;padding-bottom:4px}
.banner{padding:8px 12px;border-radius:6px;margin:6px 0;background:#eef3f9}
.banner.sim{background:#fff3cd;border:1px solid #e0c266} .banner.bad{background:#fde2e1;border:1px solid #e5a3a0}
.banner.verdict{background:#e6f4ea;border:1px solid #8cc79a}
.status-complete{color:#1e7b3b;font-weight:600} .status-other{color:#b3261e;font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d5dbe3;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#eef1f5;white-space:normal;vertical-align:bottom;max-width:80px;overflow-wrap:break-word;
position:sticky;top:0;z-index:1}
.scroll{max-width:100%;max-height:75vh;overflow:auto;margin:6px 0 12px} .scroll table{margin:0}
td.l,th.l{text-align:left} td.l{white-space:normal;min-width:60px} tr:nth-child(even) td{background:#f8f9fb}
td.wrong{background:#fde2e1 !important;color:#9b1c1c;font-weight:600}
td.err{background:#fbe3c9 !important;color:#8a4b08}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:4px 0} dt{color:#5b6775} dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:16px} .charts figure{margin:0;flex:0 1 calc(50% - 8px);min-width:480px}
.charts img{width:100%;height:auto;border:1px solid #d5dbe3} .note{color:#5b6775;font-size:12px}
"""


def _f(value: Any, spec: str = ".3g", none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    if isinstance(value, (dict, list)):  # a json task's answer or label
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _s(value: float | None) -> str:
    """Seconds, to three significant digits; under a millisecond "<0.001" (microseconds of queueing are noise,
    and 2.8e-06 reads as a figure to act on)."""
    return "<0.001" if value is not None and 0 < value < 0.001 else _f(value)


def html_table(head: Iterable[str], rows: Iterable[Iterable[Any]], left: int = 1) -> str:
    """Cells are plain values or (text, css class[, tooltip]) tuples, escaped here.

    The first ``left`` columns align left.
    """

    def cell(tag: str, i: int, value: Any) -> str:
        text, cls, tip = (*value, None)[:3] if isinstance(value, tuple) else (value, "", None)
        cls = " ".join(c for c in (cls, "l" if i < left else "") if c)
        attrs = (f' class="{cls}"' if cls else "") + (f' title="{escape(str(tip))}"' if tip else "")
        body = escape(str(text))
        if tag == "th" or i < left:  # long names may break after a slash or before an @, as well as at spaces
            body = body.replace("/", "/<wbr>").replace("@", "<wbr>@")
        return f"<{tag}{attrs}>{body}</{tag}>"

    out = ['<div class="scroll"><table><thead><tr>' + "".join(cell("th", i, h) for i, h in enumerate(head))]
    out[0] += "</tr></thead><tbody>"
    out += ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows]
    return "\n".join(out) + "</tbody></table></div>"


def _dl(pairs: Iterable[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(_f(v, 'g'))}</dd>" for k, v in pairs) + "</dl>"


def cells_rows(bundle: Mapping[str, Any], stats: list[CellStats] | None = None) -> list[list[Any]]:
    """The per-cell table's rows (means over repeats), as shown in the report; ``stats``: ``cell_stats(bundle)``."""
    bundle = Bundle.of(bundle)
    stats = cell_stats(bundle) if stats is None else stats
    names = short_names([s.cell_id for s in stats])
    rows = []
    for s in stats:
        m = s.metric
        bad = sorted(set(s.statuses) - {"complete"})
        errors = sum(e.summary.errors for e in bundle.cells if e.id == s.cell_id)
        rows.append(
            [
                (
                    names[s.cell_id] + (f" ({', '.join(bad)})" if bad else "") + _replayed(m("replayed")),
                    "wrong" if bad else "",
                ),
                s.repeats,
                str(s.wall_s) if not m("replayed") else "-",  # replayed answers were not timed by this run
                _s(m("latency_p50_s")),
                _s(m("latency_p90_s")),
                _s(m("latency_p95_s")),
                _s(m("latency_p99_s")),
                _s(m("queue_p50_s")),
                _s(m("service_p50_s")),
                _s(m("ttft_p50_s")),  # streamed cells only
                _s(m("ttft_p95_s")),
                _f(m("output_tokens_per_s_p50"), ",.0f"),
                _f(m("images_per_s")),
                _f(m("input_tokens"), ",.0f"),
                _f(m("output_tokens"), ",.0f"),
                _f(m("thinking_tokens"), ",.0f"),
                _f(s.cost_usd.mean, ".4f", "?"),
                _f(cost_per_1k(s), ",.3f", "?"),
                _f(
                    m("thinking_cost_usd") / m("cost_usd")
                    if m("cost_usd") and m("thinking_cost_usd") is not None
                    else None,
                    ".0%",
                ),
                _f(m("mae"), ".2f"),
                _f(m("exact_match"), ".0%"),
                _f(m("field_match"), ".0%"),  # json tasks only
                (errors, "err" if errors else ""),
            ]
        )
        if not answered_any([e for e in bundle.cells if e.id == s.cell_id]):  # failed: nothing to measure
            rows[-1] = [(f"{names[s.cell_id]} (failed: nothing answered)", "wrong"), *rows[-1][1:3]]
            rows[-1] += ["-"] * (len(CELL_HEAD) - 4) + [(errors, "err")]
    return rows


CELL_HEAD = [
    "cell",
    "repeats",
    "wall s (± 95% CI)",
    "p50 s",
    "p90 s",
    "p95 s",
    "p99 s",
    "queue p50 s",
    "service p50 s",
    "ttft p50 s",
    "ttft p95 s",
    "out tok/s p50",
    "img/s",
    "tok in",
    "tok out",
    "tok thinking",
    "cost $",
    "$ / 1k img",
    "thinking % of $",
    "MAE",
    "exact",
    "fields right",
    "errors, all repeats",
]


_STREAM_COLUMNS = ("ttft p50 s", "ttft p95 s", "out tok/s p50")


def _replayed(count: float | None) -> str:
    return f" ({count:,.0f} replayed)" if count else ""


def _sheet_html(sheet: Sheet | None) -> list[str]:
    """A terminal sheet as a section of the page: its title, table and notes."""
    if sheet is None:
        return []
    head = [c.head for c in sheet.columns]
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in sheet.notes)
    return [f"<h2>{escape(sheet.title)}</h2>", html_table(head, sheet.plain_rows(), left=1), notes]


def cell_table(bundle: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """``CELL_HEAD`` and ``cells_rows``, without the columns that would be blank: streaming ones when no cell
    streamed, MAE on a task that is not numeric, fields right on one that is not json."""
    stats = cell_stats(bundle)
    rows = cells_rows(bundle, stats)
    omit = set() if any(s.metric("ttft_p50_s") is not None for s in stats) else set(_STREAM_COLUMNS)
    if not numeric_task(bundle):
        omit.add("MAE")
    if task_answer_type(bundle) != "json":
        omit.add("fields right")
    if not any(s.metric("thinking_cost_usd") for s in stats):
        omit.add("thinking % of $")
    keep = [i for i, name in enumerate(CELL_HEAD) if name not in omit]
    return [CELL_HEAD[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _extras(bundle: Bundle) -> str:
    names = short_names(list(dict.fromkeys(e.id for e in bundle.cells)))
    filt, batch = [], []
    for e in bundle.cells:
        extra = e.extra or {}  # the strategies' own figures: not the bundle's format
        if f := extra.get("tier1_filter"):
            filt.append(
                [
                    names[e.id],
                    e.repeat,
                    _f(extra.get("tier2_items")),
                    e.summary.item_count,
                    _f(f.get("escalate_at"), "g"),
                    _f(f.get("precision"), ".0%"),
                    _f(f.get("recall"), ".0%"),
                    _f(f.get("true_positives")),
                    _f(f.get("false_positives")),
                    _f(f.get("false_negatives")),
                ]
            )
        if b := extra.get("batch"):
            batch.append(
                [
                    names[e.id],
                    e.repeat,
                    _f(b.get("job_id")),
                    _f(b.get("state")),
                    "yes" if b.get("resumed") else "no",
                    _f(b.get("turnaround_s"), ".3f"),
                ]
            )
    out = []
    if filt:
        out.append(
            "<h2>Adaptive: tier-1 filter</h2>"
            + html_table(
                [
                    "cell",
                    "repeat",
                    "sent to tier 2",
                    "images",
                    "escalate at >=",
                    "precision",
                    "recall",
                    "TP",
                    "FP",
                    "FN",
                ],
                filt,
            )
        )
    if batch:
        out.append(
            "<h2>Provider batch: turnaround</h2>"
            + html_table(["cell", "repeat", "job", "state", "resumed", "turnaround s"], batch)
        )
    return "\n".join(out)


def _labels(dataset: Mapping[str, Any], labelled: bool) -> str:
    """Where the labels came from: the file and the field read (the whole entry when no field is named), or the
    rows' answer field (a rows manifest's), or none."""
    labels, field = dataset.get("labels"), dataset.get("label_field")
    if labels is None:
        return f"the rows' field {dataset.get('answer', 'answer')!r}" if labelled else "none"
    return f"{labels} (field {field})" if field is not None else f"{labels} (each item's whole entry)"


def _legend(bundle: Bundle) -> str:
    """The short cell names of the answers table and the gallery, with the ids they stand for."""
    codes = cell_codes(list(dict.fromkeys(e.id for e in bundle.cells)))
    if all(k == v for k, v in codes.items()):
        return ""
    names = "; ".join(f"<b>{escape(v)}</b> = {escape(k)}" for k, v in codes.items())
    if len(codes) > MAX_CHART_CELLS:  # 500 names would be a page of text before the table: folded, one click away
        return f'<details class="note"><summary>Cells: the short names of {len(codes)} cells</summary>{names}</details>'
    return f'<p class="note">Cells: {names}</p>'


def _answers(bundle: Bundle) -> str:
    firsts = {e.id: e for e in bundle.entries_of(repeat=0)}
    names = cell_codes(list(firsts))
    chosen = chart_cells(bundle)
    if len(firsts) > MAX_CHART_CELLS:  # the charts' cells: 500 columns of 5,000 rows would not be read (or load)
        firsts = {c: firsts[c] for c in chosen.shown}
    agree = agreement(bundle)
    answer_type = task_answer_type(bundle)
    rows = []
    items = bundle.item_entries
    for item in items[:HTML_ANSWER_ROWS]:
        several = acceptable(item.label, answer_type)
        row: list[Any] = [item.id, " | ".join(map(_f, several)) if several else _f(item.label)]
        for entry in firsts.values():
            a = entry.answers.get(item.id)
            if a is None:
                row.append("")
            elif a.error is not None:
                row.append((a.error.partition(":")[0] or "error", "err", a.error))
            else:
                wrong = item.label is not None and not matches(a.value, item.label, answer_type)
                row.append((_f(a.value, "g"), "wrong" if wrong else ""))
        ag = agree["items"][item.id]
        row += [_f(ag["modal"], "g"), _f(ag["agreement"], ".0%")]
        rows.append(row)
    note = (
        '<p class="note">First repeat of each cell. Red: differs from the label; '
        "orange: error, its kind (hover for the message; the gallery below shows it in full). "
        f"Mean agreement across cells: {escape(_f(agree['mean_agreement'], '.0%'))}."
        + (
            f" The first {len(rows):,} of {len(items):,} images; <code>visionbench report RUN --format json</code> "
            "has every image."
            if len(rows) < len(items)
            else ""
        )
        + (
            f" Columns: the {len(firsts)} cells the charts draw ({escape(chosen.note(names))}); most common and "
            "agreement are over every cell."
            if chosen.left_out
            else ""
        )
        + "</p>"
    )
    table = html_table(["image", "label", *(names[c] for c in firsts), "most common", "agreement"], rows)
    return (
        note
        + _explorer(bundle, list(firsts), [names[c] for c in firsts], items[: len(rows)])
        + table.replace("<table>", '<table id="vb-items">', 1)
    )


def _explorer(bundle: Bundle, cell_ids: list[str], names: list[str], items: Sequence[Any]) -> str:
    """The answers table's filter bar and what it reads (report.explorer)."""
    field = group_field(bundle, None)
    groups = sorted({str(g) for item in items if (g := (item.fields or {}).get(field)) is not None}) if field else []
    return explorer_html(explorer_data(bundle, cell_ids, items, field), names, groups)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _rows_html(rows: Rows | None) -> list[str]:
    if rows is None:
        return []
    caption = f'<p class="note">{escape(rows.caption)}</p>' if rows.caption else ""
    return [f"<h2>{escape(rows.title)}</h2>", html_table(rows.head, rows.rows), caption]


#: Cells whose per-class table and confusion matrix the page shows at most: the most accurate by the primary scorer
#: (a sweep of 500 cells would be 500 matrices).
CLASS_CELLS = 6


def _classes_html(bundle: Bundle, found: Found) -> list[str]:
    """Per class precision, recall, F1 and support, and the confusion matrix (rows: the reference, columns: the
    answer), of each scorer that has them (``classes``), for the ``CLASS_CELLS`` most accurate cells."""
    keys = [k for k in found.keys if any("confusion" in c.metrics.get(k, {}) for c in found.cells.values())]
    if not keys:
        return []
    primary = str(found.primary)
    names = short_names(list(found.cells))
    having = [c for c in found.cells if any(found.cells[c].metrics.get(k, {}).get("confusion") for k in keys)]
    ranked = sorted(having, key=lambda c: -(found.cells[c].mean(primary) or 0.0))
    shown = ranked[:CLASS_CELLS]
    out = ["<h2>Per class and confusion matrix</h2>"]
    repeats = max(c.repeats for c in found.cells.values())
    note = "Rows: the reference; columns: the answer; answered images only" + (
        "; the first repeat" if repeats > 1 else ""
    )
    if len(shown) < len(ranked):
        note += f"; the {len(shown)} of {len(ranked)} cells most accurate by {primary}"
    out.append(f'<p class="note">{escape(note)}.</p>')
    for cell in shown:
        for key in keys:
            metrics = found.cells[cell].metrics.get(key, {})
            if not metrics.get("confusion"):
                continue
            confusion, per_class = metrics.get("confusion") or {}, metrics.get("per_class") or {}
            classes = confusion.get("classes") or list(per_class)
            out.append(f"<h3>{escape(names[cell])}: {escape(key)}</h3>")
            out.append(
                html_table(
                    ["class", "precision", "recall", "F1", "support"],
                    [
                        [
                            name,
                            _f(c.get("precision"), ".0%"),
                            _f(c.get("recall"), ".0%"),
                            _f(c.get("f1"), ".2f"),
                            _f(c.get("support")),
                        ]
                        for name, c in per_class.items()
                    ],
                )
            )
            matrix = confusion.get("matrix") or []
            out.append(
                html_table(
                    ["reference \\ answer", *classes],
                    [
                        [classes[i], *((n, "" if i == j or not n else "wrong") for j, n in enumerate(row))]
                        for i, row in enumerate(matrix)
                    ],
                )
            )
    return out


#: The charts in the order the page shows them.
CHART_ORDER = ("time", "cost_accuracy", "latency", "resolution", "concurrency_sweep", "concurrency")


#: What the page says in place of the charts when they were not drawn (``visionbench run`` without ``--charts``).
NO_CHARTS = (
    '<p class="note">Not drawn by <code>visionbench run</code> (matplotlib takes about 1.2 s of CPU): '
    "<code>visionbench report {run}</code> draws them here and as PNG files beside the bundle.</p>"
)


def _endpoints_html(bundle: Bundle) -> list[str]:
    """Where each endpoint's requests went (bundles from before endpoints have none to show)."""
    if not bundle.endpoints:
        return []
    rows = [
        [name, e.plugin, e.base_url or "the SDK's default", "yes" if e.emulated else "no"]
        for name, e in bundle.endpoints.items()
    ]
    return ["<h2>Endpoints</h2>", html_table(["endpoint", "plugin", "base URL", "emulated"], rows, left=3)]


def _verdict_html(bundle: Bundle) -> str:
    """The verdict first: the pick and why, the Pareto set (nothing for a run of one cell)."""
    from visionbench.report.tables import plain
    from visionbench.report.terminal import verdict_lines

    lines = verdict_lines(bundle, names=short_names(list(dict.fromkeys(e.id for e in bundle.cells))))
    if not lines:
        return ""
    return '<div class="banner verdict">' + "<br>".join(escape(plain(line)) for line in lines) + "</div>"


def write_html_report(
    bundle: Mapping[str, Any],
    path: Path,
    charts: dict[str, Path] | None = None,
    cache_dir: Path | None = None,
    *,
    draw_charts: bool = True,
    group_by: str | None = None,
) -> Path:
    """Write the run's report as one HTML file; ``charts`` reuses PNGs from ``write_charts``, else they are drawn
    (or, without ``draw_charts``, the page says how to draw them). ``cache_dir``: the preprocessing cache the
    gallery reads the sent images from (else they are made again)."""
    path = Path(path)
    bundle = Bundle.of(bundle)
    cfg, env = bundle.config, bundle.environment
    if charts or draw_charts:
        from visionbench.report.charts import write_charts  # here: a page without charts does not import their modules

        with tempfile.TemporaryDirectory() as tmp:
            charts = charts or write_charts(bundle, Path(tmp))
            figures = "".join(_img(charts[k], f"{k} chart") for k in CHART_ORDER if k in charts)
    else:
        figures = NO_CHARTS.format(run=escape(str(path.parent)))
    ok = bundle.status == "complete"
    banner = (
        f'<div class="banner{"" if ok else " bad"}">run <b>{escape(bundle.run_id)}</b>, status '
        f'<span class="status-{"complete" if ok else "other"}">{escape(bundle.status)}</span>, '
        f"started {escape(_f(bundle.started_at))}, finished {escape(_f(bundle.finished_at))}"
        + (f"<br>error: {escape(bundle.error)}" if bundle.error else "")
        + (f"<br>{escape(note)}" if (note := replay_note(bundle)) else "")
        + "</div>"
    )
    if bundle.simulated:
        banner += (
            '<div class="banner sim"><b>SIMULATED</b>: answers came from an emulator or fake provider, '
            "not the real services; costs price the emulated token counts."
            + (f" Emulated{escape(words)}." if (words := time_scale_words(bundle)) else "")
            + "</div>"
        )
    ds, task = bundle.dataset, bundle.task
    found = bundle_scores(bundle)
    field = group_field(bundle, group_by)
    labelled = any(i.label is not None for i in bundle.item_entries)
    config = _dl(
        [
            ("config", bundle.config_path),
            ("description", cfg.get("description")),
            ("dataset", ds.get("path")),
            ("labels", _labels(ds, labelled)),
            ("images", len(bundle.item_entries)),
            ("task", f"{task.get('id')} (answer: {task.get('answer')})"),
            ("prompt", task.get("prompt")),
            ("system prompt", task.get("system")),
            ("preprocessing", ", ".join(setting(k, v) for k, v in (cfg.get("preprocessing") or {}).items())),
            ("repeats", cfg.get("repeats", 1)),
            ("retry", json.dumps(cfg.get("retry"))),
            ("pricing", f"{bundle.pricing.version} (sha256 {bundle.pricing.sha256[:16]}...)"),
        ]
    )
    environment = _dl(
        [
            ("python", env.python),
            ("platform", env.platform),
            ("packages", ", ".join(f"{k} {v or '(not installed)'}" for k, v in env.packages.items())),
            ("providers", json.dumps(env.providers)),
        ]
    )
    title = f"visionbench: {bundle.name} ({bundle.run_id})"
    body = [
        f"<h1>{escape(title)}</h1>",
        banner,
        _verdict_html(bundle),
        "<h2>Per cell (means over repeats)</h2>",
        html_table(*cell_table(bundle)),
        '<p class="note">Latency per request actually sent; queue = waiting for a concurrency or rate slot, '
        'service = the rest, less retry backoff. Cost "?" = unknown: a model with no known price, or nothing '
        "answered (see errors). Exact = share of labelled images. Preprocessing happens before each cell's clock "
        "starts (not in its wall time).</p>",
        *_sheet_html(prices_sheet(bundle)),
        *_rows_html(accuracy_rows(bundle) if labelled else None),
        *_rows_html(group_rows(bundle, field) if field and labelled else None),
        *_classes_html(bundle, found),
        *_rows_html(difference_rows(bundle)),
        _extras(bundle),
        "<h2>Charts</h2>",
        f'<div class="charts">{figures}</div>',
        "<h2>Answers per image</h2>",
        _legend(bundle),
        _answers(bundle),
        "<h2>Images as sent</h2>",
        gallery_html(bundle, cache_dir),
        *_endpoints_html(bundle),
        "<h2>Configuration</h2>",
        config,
        "<h2>Environment</h2>",
        environment,
    ]
    html = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}{GALLERY_CSS}{EXPLORER_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A file name that is not UTF-8 (held as surrogates) shows escaped, e.g. caf\udce9.png, instead of failing.
    path.write_text(html, encoding="utf-8", errors="backslashreplace")
    return path
