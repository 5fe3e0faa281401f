"""``visionbench plan`` in the terminal: the estimates as tables fitted to its width, like ``run`` and ``report``.

Cells go by their short names (a ``Cells`` legend maps them to the ids); the notes, which repeat from cell to cell,
are numbered once under the table; a big sweep starts with a summary (cells, requests, tokens, dollars, unpriced
cells) before its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from visionbench.report.cellnames import cell_codes
from visionbench.report.tables import Column, Sheet, fit, print_sheet
from visionbench.report.terminal import legend_sheet
from visionbench.run.estimate import CellEstimate, total_cost

#: A plan of more cells than this starts with a summary of the whole sweep.
SUMMARY_ABOVE = 20

CAPTION = (
    "Image tokens by each provider's documented formula (or its count-tokens endpoint with --count-tokens). "
    "Output assumes a short answer; thinking bills as output, estimated per model from its emulator profile "
    "(exact against the emulator, a guess for the real service) or capped by model_params.thinking_budget."
)


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _dollars(value: float | None) -> str:
    return "?" if value is None else f"{value:.4f}"


def _notes(est: CellEstimate) -> list[str]:
    return (["input tokens counted by the service"] if est.counted else []) + est.notes


def _sum(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _model(cell_id: str) -> str:
    return "/".join(cell_id.split("/", 2)[:2])


def scope(cells: Sequence[str], everyone: Sequence[str], codes: dict[str, str]) -> str:
    """Which cells of ``everyone`` ``cells`` are, in few words: "every cell", the provider/models whose every cell
    it is, or the first few short names."""
    if len(cells) == len(everyone):
        return "every cell"
    models = list(dict.fromkeys(_model(c) for c in cells))
    if len(cells) == sum(1 for c in everyone if _model(c) in models):
        return ", ".join(models)
    names = ", ".join(codes[c] for c in cells[:5]) + (", ..." if len(cells) > 5 else "")
    return f"{len(cells):,} cells: {names}"


def summary_sheet(estimates: Sequence[CellEstimate]) -> Sheet:
    """The whole plan in one column: cells, requests, tokens by kind, dollars and the cells with no price."""
    unpriced = [e.cell_id for e in estimates if e.cost_usd is None]
    priced = sum(e.cost_usd for e in estimates if e.cost_usd is not None)
    rows = [
        ["cells", f"{len(estimates):,}"],
        ["requests", f"{sum(e.requests for e in estimates):,}"],
        ["image tokens", _count(_sum([e.image_tokens for e in estimates]))],
        ["text tokens", f"{sum(e.text_tokens for e in estimates):,}"],
        ["output tokens", f"{sum(e.output_tokens for e in estimates):,}"],
        ["thinking tokens", f"{sum(e.thinking_tokens for e in estimates):,}"],
        ["cost $ (priced cells)" if unpriced else "cost $", f"{priced:.4f}"],
        ["unpriced cells", f"{len(unpriced):,}"],
    ]
    notes = []
    if unpriced:
        ids = [e.cell_id for e in estimates]
        where = escape(scope(unpriced, ids, cell_codes(ids)))
        notes.append(f"unpriced, not in the cost: {where} (no price or token formula)")
    columns = [Column("plan", numeric=False, key=True), Column("all repeats")]
    return Sheet("Plan summary (estimates)", columns, rows, notes)


def cells_sheet(estimates: Sequence[CellEstimate], short: bool = True) -> Sheet:
    """One row per cell (short names unless ``short`` is False), a total row, and each note once under the table
    with the cells it concerns."""
    ids = [e.cell_id for e in estimates]
    codes = cell_codes(ids) if short else dict(zip(ids, ids))
    concerns: dict[str, list[str]] = {}
    for est in estimates:
        for note in _notes(est):
            concerns.setdefault(note, []).append(est.cell_id)
    rows = [
        [
            escape(codes[est.cell_id]),
            f"{est.requests:,}",
            _count(est.image_tokens),
            f"{est.text_tokens:,}",
            f"{est.output_tokens:,}",
            f"{est.thinking_tokens:,}",
            _dollars(est.cost_usd),
        ]
        for est in estimates
    ]
    rows.append(["total", *[""] * 5, _dollars(total_cost(list(estimates)))])
    columns = [Column("cell", numeric=False, key=True)]
    columns += [Column(h) for h in ("requests", "image tok", "text tok", "output tok", "thinking tok", "cost $")]
    notes = [f"{escape(scope(cells, ids, codes))}: {escape(note)}" for note, cells in concerns.items()]
    return Sheet("Plan (estimates, all repeats)", columns, rows, [*notes, CAPTION])


def plan_sheets(estimates: Sequence[CellEstimate], width: int | None = None) -> list[Sheet]:
    """A summary for a sweep of more than ``SUMMARY_ABOVE`` cells, then the per-cell table: by full cell ids when
    they fit ``width`` unwrapped, else by short names after a legend."""
    out = [summary_sheet(estimates)] if len(estimates) > SUMMARY_ABOVE else []
    whole = cells_sheet(estimates, short=False)
    fitted = fit(whole, width)
    longest = max((len(e.cell_id) for e in estimates), default=0)
    if len(fitted.parts) == 1 and not fitted.hidden and fitted.parts[0][1][0] >= longest:
        return [*out, whole]
    legend = legend_sheet({e.cell_id: {} for e in estimates})  # the ids say what a sweep varied (after the @)
    return out + ([legend] if legend is not None else []) + [cells_sheet(estimates)]


def print_plan(console: Console, estimates: Sequence[CellEstimate], width: int | None = None) -> None:
    """The plan's tables on ``console``, fitted to ``width`` (default: the console's): no number or id cut."""
    width = width or console.width
    for sheet in plan_sheets(estimates, width):
        print_sheet(console, sheet, width)
