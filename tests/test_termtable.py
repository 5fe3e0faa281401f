"""Terminal output that fits: no number cut or elided at 80 or 120 columns, a legend for short cell names, the
script formats, and what a run where everything failed says."""

import asyncio
import csv
import io
import json
import re

import fakeplugin
import pytest
import yaml
from conftest import make_image_dir, write_config
from rich.console import Console

from visionbench.cli import main
from visionbench.report.cellnames import cell_codes
from visionbench.report.tables import Column, Sheet, fit, print_sheet
from visionbench.report.terminal import cells_sheet, print_report
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run

STRATEGIES = [
    "sequential",
    {"name": "concurrent", "max_concurrency": 3},
    {"name": "single-prompt", "chunk_size": 4},
    {"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 16}},
]


def _run(tmp, options, matrix_extra=None, models=("m1",), **extra) -> dict:
    folder = make_image_dir(tmp / "images")
    path = write_config(tmp, folder, STRATEGIES, options=options, **extra)
    config = yaml.safe_load(path.read_text())
    config["matrix"][0]["models"] = list(models)
    config["matrix"][0].update(matrix_extra or {})
    path.write_text(yaml.safe_dump(config))
    registry = collect(make_manager([fakeplugin]))
    return bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results")))


@pytest.fixture(scope="module")
def many_cells(tmp_path_factory) -> dict:
    """16 cells (2 models x 2 sizes x 4 strategies), one failing image, priced: a wide report."""
    answers = {f"img{i}.png": i * 111 for i in range(6)}  # big numbers, three digits wide
    options = {"answers": answers, "failures": {"img5.png": ["bad_request"]}}
    return _run(
        tmp_path_factory.mktemp("many"),
        options,
        {"preprocessing": {"max_side": [16, 32]}},
        models=("m1", "m2-long-model-name"),
        pricing=[{"match": "m", "input": 1.0, "output": 5.0}],
    )


def render(bundle: dict, width: int, **kw) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_report(bundle, console, **kw)
    return console.file.getvalue()


def figures(bundle: dict) -> set[str]:
    """Numbers that must appear whole in the per-cell table (means, errors)."""
    out = set()
    for row in cells_sheet(bundle).plain_rows():
        out.update(c for c in row[1:] if re.fullmatch(r"[\d.]+%?", c))
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_report_fits_the_width_and_cuts_no_number(many_cells, width):
    out = render(many_cells, width)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, max(lines, key=len)
    assert "…" not in out and "..." not in out
    # every cell's answers are shown whole: the biggest answer and every figure kept
    assert "444" in out
    tokens = set(re.findall(r"[\w.%/@-]+", out))
    kept = {c.head for c in cells_sheet(many_cells).columns}
    assert {"wall s", "cost $", "MAE", "exact", "errors"} <= kept
    assert figures(many_cells) & tokens  # the figures shown are whole words, not cut


def test_the_legend_maps_every_short_name(many_cells):
    out = render(many_cells, 80)
    codes = cell_codes([c["id"] for c in many_cells["cells"]])
    assert len(set(codes.values())) == len(codes) == 16
    for cell_id, code in codes.items():
        assert re.search(rf"^{re.escape(code)}\s+{re.escape(cell_id)}(\s|$)", out, re.M), code


def test_left_out_columns_are_named_and_wide_shows_them(many_cells):
    narrow, wide = render(many_cells, 80), render(many_cells, 80, wide=True)
    per_cell = narrow.split("\nPer cell")[1].split("\nAccuracy")[0]
    assert "not shown to fit 80 columns:" in per_cell and "tok think" in per_cell  # named in the note
    assert "not shown" not in wide and "tok think" in wide
    assert max(len(line) for line in wide.splitlines()) > 80  # wide means wide, even on an 80-column console


def test_a_table_too_wide_for_any_selection_is_split_with_its_key_columns():
    sheet = Sheet(
        "T",
        [Column("name", numeric=False, key=True)] + [Column(f"col{i}") for i in range(20)],
        [["row", *(f"{i}.123456" for i in range(20))]],
    )
    fitted = fit(sheet, 80)
    assert len(fitted.parts) > 1 and not fitted.hidden
    assert all(part.columns[0].head == "name" for part, _ in fitted.parts)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_sheet(console, sheet, 80)
    out = console.file.getvalue()
    assert all(f"{i}.123456" in out for i in range(20))
    assert max(len(line) for line in out.splitlines()) <= 80


def test_script_formats(many_cells):
    rows = list(csv.DictReader(io.StringIO(render(many_cells, 80, fmt="csv"))))
    assert len(rows) == 16 and rows[0]["cell"] == many_cells["cells"][0]["id"]
    assert {"tok think", "p99 s", "MAE"} <= set(rows[0])  # every column, whatever the width
    doc = json.loads(render(many_cells, 80, fmt="json"))
    assert doc["status"] == "incomplete" and doc["failures"][0]["kind"] == "bad_request"
    assert {t["title"] for t in doc["tables"]} >= {"Answers per image", "Per cell", "Failed items"}
    md = render(many_cells, 80, fmt="markdown")
    assert "### Per cell" in md and "|---" in md


def test_a_run_where_everything_failed_says_so(tmp_path):
    data = _run(tmp_path, {"failures": {f"img{i}.png": ["bad_request"] for i in range(6)}})
    out = render(data, 80)
    assert "(complete)" not in out.splitlines()[0]
    assert "nothing answered" in out and "Failed items" in out and "bad_request" in out
    assert "unpriced" not in out and "no known price" not in out
    per_cell = out.split("Per cell")[1].split("\n\n")[0]
    seq = next(line for line in per_cell.splitlines() if line.startswith("seq"))
    assert re.search(r"\d{3,}\.\d", seq) is None  # no img/s for a cell that answered nothing
    # failed, never scored or ranked: no "0% [0%, 46%]" for it, no row against the most accurate cell
    scores = out.split("Scores, 95% interval")[1].split("\n\n")[0]
    assert (
        "seq (failed: nothing answered)" in scores
        and "0% [" not in scores.split("(failed: nothing answered)")[1].split("\n")[0]
    )
    against = out.split("Against the most accurate cell")[1].split("\n\n")[0]
    assert not any(line.startswith("seq ") for line in against.splitlines())


@pytest.mark.slow
def test_cli_report_is_80_columns_when_piped_and_says_how_to_go_on(many_cells, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps(many_cells))
    import visionbench.cli as cli

    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), color_system=None))
    assert cli.console.width == 80  # rich's rule when not a terminal and COLUMNS is unset
    assert main(["report", str(folder)]) == 0
    out, err = cli.console.file.getvalue(), capsys.readouterr().err
    tables = [line for line in out.splitlines() if not line.startswith(("charts:", "report:", "bundle:"))]
    assert max(len(line) for line in tables) <= 80 and "…" not in out  # the file paths are left whole
    assert f"visionbench run --resume {folder} --retry-errors" in err
    assert main(["report", str(folder), "--format", "json"]) == 0
    json.loads(cli.console.file.getvalue()[len(out) :])  # stdout holds the JSON only


def test_output_width_is_80_when_piped_unless_columns_is_set(monkeypatch):
    import visionbench.cli as cli

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: False)
    assert cli.output_width() == 80  # even when stdin is a wide terminal (rich alone would measure that)
    monkeypatch.setenv("COLUMNS", "120")
    assert cli.output_width() == 120
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: True)
    assert cli.output_width() is None  # a terminal: rich measures it


@pytest.mark.parametrize(
    ("error", "code", "again"),
    [("budget", 3, " --max-cost USD"), ("interrupt", 130, ""), ("bug", 70, "")],
)
def test_a_run_that_stops_says_where_its_bundle_is_and_how_to_resume(tmp_path, capsys, monkeypatch, error, code, again):
    import visionbench.run.runner as runner
    from visionbench.errors import BudgetExceeded

    monkeypatch.setattr(runner, "new_run_id", lambda name: "the-run")

    async def stops(plan, *, results_dir, run_id, **kw):
        (results_dir / run_id).mkdir(parents=True)
        (results_dir / run_id / "bundle.json").write_text("{}")
        raise {"budget": BudgetExceeded("over budget"), "interrupt": KeyboardInterrupt(), "bug": RuntimeError("x")}[
            error
        ]

    monkeypatch.setattr(runner, "run", stops)
    config = str(__import__("pathlib").Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    assert main(["run", config, "--results", str(tmp_path), "--no-cache", "--quiet"]) == code
    err = capsys.readouterr().err
    assert f"bundle so far: {tmp_path / 'the-run' / 'bundle.json'}" in err
    assert f"to finish it: visionbench run --resume {tmp_path / 'the-run'}{again}\n" in err
