"""Several runs as one bundle whose cells are every run's cells, so ``compare`` gives a verdict by the same rules as a
run's (paired tests by item id, Holm across the cells, no pick on noise).

Each cell is named ``#N <cell id>`` after its run's number in the comparison. Times are each run's modelled seconds
(an emulated run's wall seconds / its time scale). The joined bundle has no records: no latency is tested between
runs (the machine's and the services' load differed), and the scores are each run's own. Items and the task are the
baseline's (the first run's): ``compare`` warns when the runs' images, labels or task differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from visionbench.report.stats import SERVICE_RATES, SERVICE_SECONDS
from visionbench.results.model import Bundle


def cell_name(run: int, cell_id: str) -> str:
    """A run's cell as the combined bundle names it."""
    return f"#{run} {cell_id}"


def combined(bundles: Sequence[Mapping[str, Any]]) -> Bundle:
    """One bundle of every cell of ``bundles`` (the first is the baseline), without records, for the verdict across
    runs."""
    runs = [Bundle.of(b) for b in bundles]
    base = runs[0]
    items, seen = [], set()
    for run in runs:
        for item in run.item_entries:
            if item.id not in seen:
                seen.add(item.id)
                items.append(item)
    config = {k: v for k, v in base.config.items() if k != "emulator"}  # times below are modelled already
    cells = [_cell(entry, n, run.to_modelled) for n, run in enumerate(runs) for entry in run.cells]
    return Bundle(
        {
            **base,
            "run_id": "+".join(r.run_id for r in runs),
            "simulated": any(bool(r.get("simulated")) for r in runs),
            "config": config,
            "items": items,
            "cells": cells,
            "records": [],
        }
    )


def _cell(entry: Mapping[str, Any], run: int, factor: float) -> dict[str, Any]:
    summary = dict(entry["summary"])
    for key, value in summary.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key in SERVICE_SECONDS:
                summary[key] = value * factor
            elif key in SERVICE_RATES:
                summary[key] = value / factor
    return {**entry, "id": cell_name(run, entry["id"]), "summary": summary}


__all__ = ["combined", "cell_name"]
