"""`visionbench plan` at 80 columns: fitted tables, no id or number cut, a legend for long ids, a summary first for
big sweeps. The configs are emulated, so plan sends nothing."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

import visionbench.cli as cli
from visionbench.report.plan_table import SUMMARY_ABOVE
from visionbench.run.estimate import estimate
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"

#: Matrices of 1, 18 and 500 cells.
MATRICES = {
    1: [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]}],
    18: [
        {
            "provider": "gemini",
            "models": ["gemini-3.5-flash"],
            "preprocessing": {"max_side": [384, 768, 1536]},
            "model_params": {"media_resolution": ["low", "high"]},
            "strategies": ["concurrent", {"name": "single-prompt", "chunk_size": [5, 10]}],
        }
    ],
    500: [
        {
            "provider": "gemini",
            "models": ["gemini-3.5-flash", "gemini-3.5-flash-lite"],
            "preprocessing": {"max_side": [256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 2048]},
            "strategies": [{"name": "concurrent", "max_concurrency": list(range(1, 25)) + ["auto"]}],
        }
    ],
}


#: A per-cell row's line: it ends with the six figures (a long name's continuation lines hold no figures).
FIGURES = re.compile(r"(\s+[\d,.?]+){6}\s*$")


def sweep_config(tmp_path: Path, cells: int, pricing: list | None = None) -> Path:
    config = {
        "name": f"sweep-{cells}",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people are in this image?", "answer": "integer"},
        "emulator": {"time_scale": 0},
        "matrix": MATRICES[cells],
    }
    if pricing:
        config["pricing"] = pricing
    path = tmp_path / f"sweep-{cells}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def plan_output(monkeypatch, config: Path, width: int = 80) -> str:
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), width=width, color_system=None))
    assert cli.main(["plan", str(config)]) == 0
    return cli.console.file.getvalue()


def rows_of(out: str, title: str) -> list[str]:
    """The body lines of the table titled ``title`` (between its header rule and the next blank line)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rule = next(i for i in range(start, len(lines)) if lines[i].startswith("─"))
    end = next(i for i in range(rule, len(lines)) if not lines[i].strip())
    return lines[rule + 1 : end]


@pytest.mark.parametrize("cells", [1, 18, 500])
def test_plan_fits_80_columns_with_every_figure_whole(tmp_path, monkeypatch, cells):
    config = sweep_config(tmp_path, cells)
    out = plan_output(monkeypatch, config)
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    assert "not shown to fit" not in out and "(1 of" not in out  # every column, in one part
    for word in ("requests", "image", "thinking", "output", "cost $"):
        assert re.search(rf"(^|\s){re.escape(word)}(\s|$)", out, re.M), word  # headers whole, never `reques…`
    estimates = asyncio.run(estimate(load_plan(config, default_registry())))
    assert len(estimates) == cells
    body = rows_of(out, "Plan (estimates")
    per_cell = [line for line in body if FIGURES.search(line) and not line.startswith("total")]
    assert len(per_cell) == cells  # one line of figures per cell (a long name may wrap onto the next lines)
    for line, est in zip(per_cell, estimates):
        figures = line.split()[-6:]
        assert figures == [
            f"{est.requests:,}",
            f"{est.image_tokens:,}",
            f"{est.text_tokens:,}",
            f"{est.output_tokens:,}",
            f"{est.thinking_tokens:,}",
            f"{est.cost_usd:.4f}",
        ]
    summary = "Plan summary" in out
    assert summary == (cells > SUMMARY_ABOVE)
    if summary:
        assert out.index("Plan summary") < out.index("Plan (estimates")
        table = dict(line.rsplit(None, 1) for line in rows_of(out, "Plan summary"))
        assert {k.strip(): v for k, v in table.items()} == {
            "cells": f"{cells:,}",
            "requests": f"{sum(e.requests for e in estimates):,}",
            "image tokens": f"{sum(e.image_tokens for e in estimates):,}",
            "text tokens": f"{sum(e.text_tokens for e in estimates):,}",
            "output tokens": f"{sum(e.output_tokens for e in estimates):,}",
            "thinking tokens": f"{sum(e.thinking_tokens for e in estimates):,}",
            "cost $": f"{sum(e.cost_usd for e in estimates):.4f}",
            "unpriced cells": "0",
        }


def test_a_legend_maps_every_short_name_to_its_full_id(tmp_path, monkeypatch):
    config = sweep_config(tmp_path, 18)
    out = plan_output(monkeypatch, config)
    lines = out.splitlines()
    head = lines[lines.index(next(line for line in lines if line.startswith("Cells"))) + 1]
    at = head.index("cell")  # where the id column starts
    legend = rows_of(out, "Cells")
    ids = [cell.id for cell in load_plan(config, default_registry()).experiment.cells]
    # a long id wraps (at /, @ and ,), never cut: its column, read down, is every id in full, in order
    assert "".join(line[at:].strip() for line in legend) == "".join(ids)
    names = "".join(line[:at].strip() for line in legend)
    body = rows_of(out, "Plan (estimates")
    body = body[: next(i for i, line in enumerate(body) if line.startswith("total"))]
    assert "".join(line.split()[0] for line in body if line.strip()) == names  # the table names cells as the legend
    one = plan_output(monkeypatch, sweep_config(tmp_path, 1), width=120)  # an id that fits is shown whole, no legend
    assert "Cells" not in one and "\ngemini/gemini-3.5-flash/sequential " in one


def test_the_summary_counts_unpriced_cells_and_leaves_them_out_of_the_dollars(tmp_path, monkeypatch):
    unpriced = sweep_config(tmp_path, 500)
    text = unpriced.read_text().replace("gemini-3.5-flash-lite", "my-finetune")
    unpriced.write_text(text)
    out = plan_output(monkeypatch, unpriced)
    summary = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in rows_of(out, "Plan summary"))}
    assert summary["unpriced cells"] == "250" and "cost $ (priced cells)" in summary
    flat = " ".join(out.split())
    assert "unpriced, not in the cost: gemini/my-finetune (no price or token formula)" in flat
    assert "gemini/my-finetune: no price or token formula for my-finetune" in flat  # under the per-cell table
    total = next(line for line in rows_of(out, "Plan (estimates") if line.startswith("total"))
    assert total.split() == ["total", "?"]
