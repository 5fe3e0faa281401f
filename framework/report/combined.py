"""Several runs as one bundle whose cells are every run's cells, so ``compare`` gives a verdict by the same rules as a
run's (paired tests by item id, Holm across the cells, no pick on noise).

Each cell is named ``#N <cell id>`` after its run's number in the comparison. Times are each run's modelled seconds
(an emulated run's wall seconds / its time scale), and each run's requests are moved apart in time, so no latency
test ever pairs requests of two runs as if they had run together. Items and the task are the baseline's (the first
run's): ``compare`` warns when the runs' images, labels or task differ. Records are read as they are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from visionbench.report.stats import SERVICE_RATES, SERVICE_SECONDS
from visionbench.results.model import Bundle

#: Seconds between one run's requests and the next's in the combined bundle: more than any run lasts.
RUN_APART_S = 1e9


def cell_name(run: int, cell_id: str) -> str:
    """A run's cell as the combined bundle names it."""
    return f"#{run} {cell_id}"


def combined(bundles: Sequence[Mapping[str, Any]], *, records: bool = True) -> Bundle:
    """One bundle of every cell of ``bundles`` (the first is the baseline), for the verdict across runs; without
    ``records`` (none: what needs no request, as the verdict across runs, which tests no latency)."""
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
            "records": _Records([(run.records, n, run.to_modelled) for n, run in enumerate(runs)] if records else []),
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


class _Records(Sequence[dict[str, Any]]):
    """The runs' records one after another, each renamed to its combined cell and moved to its run's time."""

    def __init__(self, parts: list[tuple[Sequence[Mapping[str, Any]], int, float]]) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(records) for records, _, _ in self.parts)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for records, run, factor in self.parts:
            for record in records:
                yield _moved(record, run, factor)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if index < 0:
            index += len(self)
        for records, run, factor in self.parts:
            if index < len(records):
                return _moved(records[index], run, factor)
            index -= len(records)
        raise IndexError(index)


def _moved(record: Mapping[str, Any], run: int, factor: float) -> dict[str, Any]:
    out = dict(record)
    out["cell"] = cell_name(run, record["cell"])
    offset = run * RUN_APART_S
    out["start_s"], out["end_s"] = record["start_s"] * factor + offset, record["end_s"] * factor + offset
    if isinstance(record.get("latency_s"), (int, float)):
        out["latency_s"] = record["latency_s"] * factor
    return out


__all__ = ["combined", "cell_name"]
