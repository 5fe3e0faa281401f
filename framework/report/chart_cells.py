"""Which cells a chart draws: never a cell that answered nothing (it is named as failed instead), and at most
``MAX_CHART_CELLS`` of a big sweep (the most accurate; the rest are in the tables), so a chart stays readable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionbench.report.scores import bundle_scores
from visionbench.report.significance import numeric_task
from visionbench.report.stats import cell_stats, cost_per_1k
from visionbench.results.model import Bundle

#: Cells a chart of one bar or box per cell draws at most (about 20 inches of 880 px wide PNG, at 0.5 inch a cell).
MAX_CHART_CELLS = 30
#: Failed cells named on a chart at most (the tables list them all).
MAX_NAMED_FAILED = 8


@dataclass(frozen=True)
class ChartCells:
    """The cells a chart draws (in matrix order), the cells that answered nothing, and how many were left out."""

    shown: list[str]
    failed: list[str]
    left_out: int
    ranked_by: str

    def note(self, names: Mapping[str, str]) -> str:
        """What the chart leaves out, in words ("" when it draws every cell): said on the chart itself."""
        parts = []
        if self.left_out:
            parts.append(
                f"{len(self.shown)} of {len(self.shown) + self.left_out} answering cells drawn: the most accurate "
                f"by {self.ranked_by}; the other {self.left_out} are in the tables (report.html, visionbench report)"
            )
        if self.failed:
            named = ", ".join(names.get(c, c) for c in self.failed[:MAX_NAMED_FAILED])
            more = f" and {len(self.failed) - MAX_NAMED_FAILED} more" if len(self.failed) > MAX_NAMED_FAILED else ""
            parts.append(f"failed, nothing answered, not drawn: {named}{more}")
        return "; ".join(parts)


def answered(bundle: Mapping[str, Any]) -> dict[str, bool]:
    """Per cell id (matrix order): whether any repeat of it has an answer that is not an error."""
    out: dict[str, bool] = {}
    for entry in Bundle.of(bundle).cells:
        out[entry.id] = out.get(entry.id, False) or any(a.error is None for a in entry.answers.values())
    return out


def chart_cells(bundle: Mapping[str, Any], limit: int = MAX_CHART_CELLS) -> ChartCells:
    """The cells to draw: those that answered something, the ``limit`` most accurate of them when there are more
    (the primary scorer's mean, else MAE on numeric tasks, else exact match; ties: cheaper, then matrix order;
    cells without an accuracy figure last), kept in matrix order."""
    done = answered(bundle)
    failed = [c for c, ok in done.items() if not ok]
    cells = [c for c, ok in done.items() if ok]
    ranked_by = _accuracy_name(bundle)
    if len(cells) <= limit:
        return ChartCells(cells, failed, 0, ranked_by)
    accuracy = _accuracy(bundle)
    costs = {s.cell_id: cost_per_1k(s) for s in cell_stats(bundle)}
    order = {c: i for i, c in enumerate(cells)}

    def rank(cell: str) -> tuple[bool, float, float, int]:
        value = accuracy.get(cell)
        cost = costs.get(cell)
        return (value is None, -(value or 0.0), cost if cost is not None else float("inf"), order[cell])

    keep = set(sorted(cells, key=rank)[:limit])
    return ChartCells([c for c in cells if c in keep], failed, len(cells) - limit, ranked_by)


def _accuracy_name(bundle: Mapping[str, Any]) -> str:
    found = bundle_scores(bundle)
    if found.primary is not None:
        return f"{found.primary} (mean score)"
    return "MAE" if numeric_task(bundle) else "exact match"


def _accuracy(bundle: Mapping[str, Any]) -> dict[str, float | None]:
    """Per cell, higher is better: the primary scorer's mean, else minus the MAE (numeric tasks), else exact match."""
    found = bundle_scores(bundle)
    if found.primary is not None:
        return {c: found.cells[c].mean(found.primary) if c in found.cells else None for c in answered(bundle)}
    numeric = numeric_task(bundle)
    out: dict[str, float | None] = {}
    for s in cell_stats(bundle):
        value = s.metric("mae" if numeric else "exact_match")
        out[s.cell_id] = None if value is None else (-value if numeric else value)
    return out


def wrapped(*parts: str, width: int = 80) -> str:
    """``parts`` as lines of an axis label, each wrapped to about the chart's width (an 8-inch figure's label is
    centred under its axes, which start a third of the way in); empty parts left out."""
    import textwrap

    return "\n".join(line for part in parts if part for line in textwrap.wrap(part, width))
