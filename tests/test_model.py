"""The bundle's typed model: the writer makes it, load returns it, the schema is generated from it, old bundles
are upgraded to it, and every reader asks it the emulator's time scale."""

import asyncio
import copy
import io
import json
import subprocess
import sys

import fakeplugin
import pytest
from conftest import make_image_dir, write_config
from rich.console import Console

from visionbench.results import bundle as bundle_mod
from visionbench.results import model
from visionbench.results.bundle import BundleWriter
from visionbench.results.model import Bundle, CellEntry, CellSummary
from visionbench.results.records import ItemEntry, Records
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run
from visionbench.types import Answer, Record, Usage


def _record(i: int) -> Record:
    return Record("c", [f"img{i}.png"], "p", "m", None, float(i), i + 0.5, 1, 64, usage=Usage(input_tokens=3),
                  answers=[Answer(f"img{i}.png", i)])  # fmt: skip


def _summary(**over) -> dict:
    names = [n for n, f in CellSummary._fields.items() if f.default is model._MISSING]
    return {n: 0 for n in names} | over


def _bundle(tmp_path, n: int = 2, **header):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(
        path, {"run_id": "r", "items": [{"id": "img0.png", "sha256": "0" * 64, "label": 1}], **header}
    )
    for i in range(n):
        writer.add_record(_record(i))
    writer.set_cell(
        CellEntry(
            id="c",
            repeat=0,
            provider="p",
            model="m",
            strategy="s",
            label="c",
            params={},
            model_params={},
            varied={},
            status="complete",
            error=None,
            summary=CellSummary(_summary(items=1, errors=0)),
            answers={"img0.png": Answer("img0.png", 1)},
            extra={},
        )  # fmt: skip
    )
    writer.finish("complete")
    return path


def test_the_shipped_schema_is_the_one_generated_from_the_model():
    assert bundle_mod.schema() == model.json_schema()
    assert model.SCHEMA_FILE.read_text() == model.schema_text()  # python -m visionbench.results.model writes it
    check = subprocess.run([sys.executable, "-m", "visionbench.results.model", "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_the_record_schema_has_every_field_of_the_record_dataclass():
    fields = set(model.json_schema()["$defs"]["Record"]["properties"])
    assert fields == {*Record.__dataclass_fields__, "latency_s"} == set(model.record_to_json(_record(0)))


@pytest.mark.parametrize("lazy", [False, True])
def test_load_returns_the_typed_bundle_and_json_load_gives_the_same(tmp_path, lazy):
    path = _bundle(tmp_path)
    loaded = bundle_mod.load(path, lazy=lazy)
    assert isinstance(loaded, Bundle) and isinstance(loaded, dict)
    assert loaded == json.loads(path.read_text())  # a script's json.load sees the same bundle
    assert loaded.run_id == "r" and loaded.status == "complete" and loaded.schema_version == model.SCHEMA_VERSION
    (entry,) = loaded.cells
    assert isinstance(entry, CellEntry) and isinstance(entry.summary, CellSummary)
    assert entry.summary.item_count == 1 and entry.answers["img0.png"].value == 1 and entry.varied == {}
    assert loaded.item_entries[0].id == "img0.png" and loaded.item_entries[0].label == 1
    assert [r.item_ids for r in loaded.records_as_objects()] == [["img0.png"], ["img1.png"]]
    if lazy:  # records read from the file on use, items compact: nothing per record made at load
        assert isinstance(loaded.records, Records) and isinstance(loaded.item_entries[0], ItemEntry)
    assert json.loads(json.dumps(loaded, default=bundle_mod.jsonable)) == json.loads(path.read_text())


def test_the_writer_builds_the_model(tmp_path):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, Bundle(run_id="r", item_entries=[]))
    assert isinstance(writer.data, Bundle) and writer.data.status == "running" and writer.data.records_file
    writer.finish("complete")
    assert bundle_mod.load(path).status == "complete"


def test_an_old_bundle_is_upgraded_at_load(tmp_path):
    path = _bundle(tmp_path)
    old = json.loads(path.read_text())
    for entry in old["cells"]:  # as visionbench wrote it before sweeps (no varied), strategy figures or cell errors
        del entry["varied"], entry["extra"], entry["error"]
    old.pop("budget", None)
    bundle_mod.write(path, old)
    for lazy in (False, True):
        loaded = bundle_mod.load(path, lazy=lazy)
        (entry,) = loaded.cells
        assert entry["varied"] == {} and entry["extra"] == {} and entry["error"] is None  # in the JSON too
        assert loaded.budget is None and loaded.resumed_at == []
    assert model.upgrade(copy.deepcopy(old)) == model.upgrade(model.upgrade(copy.deepcopy(old)))  # idempotent


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Bundle:
    tmp = tmp_path_factory.mktemp("real")
    path = write_config(tmp, make_image_dir(tmp / "images"), ["sequential"], options={"answers": {}})
    registry = collect(make_manager([fakeplugin]))
    return bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results")))


def _emulated(real: Bundle, config_emulator) -> Bundle:
    bundle = copy.deepcopy(real)
    bundle["simulated"] = True
    bundle["config"].pop("emulator", None)
    if config_emulator is not None:
        bundle["config"]["emulator"] = config_emulator
    return bundle


@pytest.mark.parametrize(
    ("emulator", "scale"),
    [(None, None), ({}, None), ({"time_scale": 0.05}, 0.05), ({"profiles": "p.yaml"}, "default"), (True, "default")],
)
def test_every_reader_takes_the_time_scale_from_the_model(real, emulator, scale):
    from visionbench.report import compare, figures, terminal

    bundle = _emulated(real, emulator)
    assert isinstance(bundle, Bundle)
    assert bundle.time_scale == scale
    assert terminal.time_scale(bundle) == compare._time_scale(bundle) == scale  # they disagreed on "default"
    out = io.StringIO()
    terminal.print_report(bundle, Console(file=out, width=200), fmt="json")
    assert json.loads(out.getvalue())["time_scale"] == scale
    note = terminal.simulated_note(bundle)
    if scale == "default":
        assert "profiles' time scale" in note
    mark = figures.simulated_mark(bundle)
    if isinstance(scale, float):
        assert f"time scale {scale:g}: times are the emulated services' seconds (wall seconds / {scale:g})" in mark
    elif scale == "default":
        assert "profiles' time scale" in mark
    else:
        assert "time scale" not in mark


def test_an_emulated_runs_times_are_shown_in_modelled_seconds(real):
    """At time scale 0.05 a request that took 0.1 s of wall time took 2 s of the emulated service's time: every
    report shows 2 s (and images/s 20 times lower), and says so; at time scale 0 nothing is converted."""
    from visionbench.report import terminal
    from visionbench.report.stats import cell_stats

    scaled = _emulated(real, {"time_scale": 0.05})
    [wall] = cell_stats(real)
    [modelled] = cell_stats(scaled)
    assert scaled.to_modelled == pytest.approx(20.0)
    for key in ("latency_p50_s", "latency_p95_s", "service_p50_s"):
        assert modelled.metric(key) == pytest.approx(wall.metric(key) * 20)
    assert modelled.metric("images_per_s") == pytest.approx(wall.metric("images_per_s") / 20)
    assert modelled.wall_s.mean == pytest.approx(wall.wall_s.mean * 20)
    assert modelled.metric("cost_usd") == wall.metric("cost_usd") and modelled.metric("preprocess_s") == wall.metric(
        "preprocess_s"
    )  # not times the services set
    out = io.StringIO()
    terminal.print_report(scaled, Console(file=out, width=200), fmt="csv")
    header, row = out.getvalue().splitlines()[:2]
    assert header.endswith("simulated,time_scale") and row.endswith("yes,0.05")
    assert "(wall seconds / 0.05)" in terminal.status_line(scaled)
    [instant] = cell_stats(_emulated(real, {"time_scale": 0}))
    assert instant.metric("latency_p50_s") == wall.metric("latency_p50_s")
    assert "nothing modelled" in terminal.status_line(_emulated(real, {"time_scale": 0}))
