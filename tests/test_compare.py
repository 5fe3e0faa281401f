"""Comparing runs: cells lined up by id, missing cells, changes against the baseline, and dataset/pricing flags."""

import asyncio
import copy
import json
import re
import shutil
from pathlib import Path
from statistics import mean

import fakeplugin
import pytest
from conftest import write_config
from PIL import Image
from rich.console import Console

from visionbench.report.compare import METRICS, _grid, compare, comparison_html, print_comparison
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, default_registry, make_manager
from visionbench.run.runner import run

PREFIX = "scripted/m1/"


def _run(tmp, folder, strategies, **kwargs) -> dict:
    registry = collect(make_manager([fakeplugin]))
    path = write_config(tmp, folder, strategies, **kwargs)
    data = bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results")))
    bundle_mod.validate(data)
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A: 6 images, sequential + concurrent, 2 repeats, all right.
    Run B: img0-img4 (same files) + a new img6, img4 relabelled, sequential + single-prompt, a price override,
    one wrong answer."""
    tmp_a, tmp_b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    folder_a, folder_b = tmp_a / "images", tmp_b / "images"
    folder_a.mkdir()
    for i in range(6):
        Image.new("RGB", (64 + i, 48), (40 * i, 100, 200)).save(folder_a / f"img{i}.png")
    (folder_a / "labels.json").write_text(json.dumps({f"img{i}.png": {"person_count": i} for i in range(6)}))
    folder_b.mkdir()
    for i in range(5):
        shutil.copy(folder_a / f"img{i}.png", folder_b / f"img{i}.png")
    Image.new("RGB", (70, 50), (9, 9, 9)).save(folder_b / "img6.png")
    labels_b = {f"img{i}.png": {"person_count": i} for i in range(5)} | {
        "img4.png": {"person_count": 7},
        "img6.png": {"person_count": 6},
    }
    (folder_b / "labels.json").write_text(json.dumps(labels_b))
    answers = {f"img{i}.png": i for i in range(7)}
    a = _run(
        tmp_a,
        folder_a,
        ["sequential", {"name": "concurrent", "max_concurrency": 3}],
        options={"answers": answers},
        repeats=2,
    )
    b = _run(
        tmp_b,
        folder_b,
        ["sequential", {"name": "single-prompt", "chunk_size": 4}],
        options={"answers": answers},
        pricing=[{"match": "m1", "input": 1.0, "output": 5.0}],
    )
    return a, b


def _mean(bundle, cell_id, key):
    values = [e["summary"][key] for e in bundle["cells"] if e["id"] == cell_id and e["summary"][key] is not None]
    return mean(values) if values else None


def test_cells_line_up_by_id_with_values_per_run(runs):
    a, b = runs
    c = compare([a, b])
    assert (
        [r.run_id for r in c.runs] == [a["run_id"], b["run_id"]] and c.runs[0].repeats == 2 and c.runs[1].repeats == 1
    )
    assert c.keys == [PREFIX + "sequential", PREFIX + "concurrent", PREFIX + "single-prompt"]
    # no cell streamed: no time-to-first-token rows; one row of the task's one scorer (numeric)
    assert len(c.rows) == 3 * (len(METRICS) - 2 + 1)
    assert c.row(PREFIX + "sequential", "score:numeric").values == pytest.approx([1.0, 5 / 6])
    seq = PREFIX + "sequential"
    for metric in ("wall_s", "latency_p50_s", "latency_p95_s", "images_per_s", "mae", "exact_match"):
        row = c.row(seq, metric)
        assert row.values == pytest.approx([_mean(a, seq, metric), _mean(b, seq, metric)])
    assert c.row(seq, "exact_match").values == pytest.approx([1.0, 5 / 6])  # img4 relabelled 7 in B, answered 4
    assert c.row(seq, "cost_usd").values == pytest.approx([0.006, 0.006])  # the scripted provider's own price
    assert c.row(seq, "cost_per_1k_images_usd").values == pytest.approx([1.0, 1.0])
    assert c.row(seq, "errors").values == [0, 0]
    # tokens, thinking included: six one-image requests of 100 in / 5 out; the scripted provider reports no thinking
    assert c.row(seq, "input_tokens").values == [600, 600] and c.row(seq, "output_tokens").values == [30, 30]
    assert c.row(seq, "thinking_tokens").values == [None, None]


def test_missing_cells_are_marked_and_have_no_change(runs):
    a, b = runs
    c = compare([a, b])
    conc, single = PREFIX + "concurrent", PREFIX + "single-prompt"
    assert c.presence[conc] == [True, False] and c.presence[single] == [False, True]
    assert c.missing(conc) == [b["run_id"]] and c.missing(single) == [a["run_id"]]
    row = c.row(conc, "wall_s")
    assert (
        row.values[0] is not None
        and row.values[1] is None
        and row.deltas == [None, None]
        and row.ratios == [None, None]
    )
    assert c.row(single, "wall_s").deltas == [None, None]
    assert any(conc in f and b["run_id"] in f for f in c.flags)


def test_deltas_and_ratios_against_the_baseline(runs):
    a, _ = runs
    faster = copy.deepcopy(a)
    faster["run_id"] = "faster"
    for entry in faster["cells"]:
        s = entry["summary"]
        s["wall_s"] /= 2
        s["images_per_s"] *= 2
        s["exact_match"] = 0.5
        s["cost_usd"], s["cost_per_1k_images_usd"] = 0.0, 0.0
    bundle_mod.validate(faster)
    c = compare([a, faster, a])
    seq = PREFIX + "sequential"
    wall = c.row(seq, "wall_s")
    assert wall.deltas[0] is None and wall.deltas[1] == pytest.approx(-wall.values[0] / 2)
    assert wall.ratios[1:] == pytest.approx([0.5, 1.0]) and wall.deltas[2] == 0
    assert c.row(seq, "images_per_s").ratios[1] == pytest.approx(2.0)
    assert c.row(seq, "exact_match").deltas[1] == pytest.approx(-0.5)
    cost = c.row(seq, "cost_usd")
    assert cost.deltas[1] == pytest.approx(-0.006) and cost.ratios[1] == pytest.approx(0.0)
    zero_base = compare([faster, a]).row(seq, "cost_usd")
    assert zero_base.deltas[1] == pytest.approx(0.006) and zero_base.ratios[1] is None  # no ratio against 0
    # same images, prices, task: nothing to warn about but the baseline given again
    assert c.flags == [
        f"run {a['run_id']} is given 2 times (runs 1, 3): it is compared with itself, so its differences are all 0"
    ]
    assert compare([a, faster]).flags == []


def test_dataset_pricing_and_simulated_differences_are_flagged(runs):
    a, b = runs
    c = compare([a, b])
    [overlap] = c.items
    assert (overlap.run, overlap.shared, overlap.only_in_baseline, overlap.only_in_run, overlap.label_changes) == (
        1,
        5,
        1,
        1,
        1,
    )
    text = "\n".join(c.flags)
    assert "images differ" in text and "5 with the baseline, 1 only in the baseline, 1 only in" in text
    assert "labels differ on 1 shared images" in text
    assert "price tables differ" in text and b["pricing"]["version"] in text
    assert "simulated" not in text  # both simulated: no mix
    real = copy.deepcopy(a)
    real["simulated"], real["run_id"] = False, "real-run"
    real["status"] = "interrupted"
    bundle_mod.validate(real)
    flags = "\n".join(compare([a, real]).flags)
    assert "mix of simulated and real runs" in flags and "real-run is interrupted" in flags
    assert "images differ" not in flags and "price" not in flags


def test_match_by_strategy_label_across_models(runs):
    a, _ = runs
    other = copy.deepcopy(a)
    other["run_id"] = "m2-run"
    for entry in other["cells"]:
        entry["model"], entry["id"] = "m2", entry["id"].replace("/m1/", "/m2/")
    assert all(not all(p) for p in compare([a, other]).presence.values())  # by id: nothing in common
    c = compare([a, other], by="label")
    assert c.keys == ["sequential", "concurrent"] and all(all(p) for p in c.presence.values())
    assert c.row("sequential", "wall_s").ratios[1] == pytest.approx(1.0)
    twin = copy.deepcopy(a)
    twin["cells"] += [dict(e, id=e["id"].replace("/m1/", "/m2/"), model="m2") for e in a["cells"]]
    c = compare([a, twin], by="label")  # a label on two models: qualified by provider and model
    assert c.keys == [PREFIX + "sequential", PREFIX + "concurrent", "scripted/m2/sequential", "scripted/m2/concurrent"]


def _two_providers(bundle: dict, model: str, run_id: str) -> dict:
    """The run as if made on two providers with the same strategies (labels repeat across providers)."""
    out = copy.deepcopy(bundle)
    out["run_id"] = run_id
    out["cells"] = []
    for provider in ("scripted", "other"):
        for e in bundle["cells"]:
            out["cells"].append(dict(e, provider=provider, model=model, id=f"{provider}/{model}/{e['label']}"))
    return out


def test_match_by_label_on_multi_provider_runs(runs):
    a, _ = runs
    base, newer = _two_providers(a, "m1", "base"), _two_providers(a, "m2", "newer")
    assert all(not all(p) for p in compare([base, newer]).presence.values())
    c = compare([base, newer], by="label")  # was: "label 'sequential' names several cells"
    assert c.keys == ["scripted/sequential", "scripted/concurrent", "other/sequential", "other/concurrent"]
    assert all(all(p) for p in c.presence.values())
    assert not any("emulator time scales" in f for f in c.flags)


def test_flags_time_scale_task_and_preprocessing(runs):
    a, _ = runs
    fast, slow = copy.deepcopy(a), copy.deepcopy(a)
    fast["config"]["emulator"], slow["config"]["emulator"] = {"time_scale": 0.05}, {"time_scale": 0.4}
    slow["run_id"] = "slow"
    slow["config"]["task"] = dict(a["config"]["task"], prompt="Count them.")
    slow["config"]["preprocessing"] = dict(a["config"]["preprocessing"], max_side=32)
    flags = compare([fast, slow]).flags
    assert any("emulator time scales differ" in f and "x0.05" in f and "slow x0.4" in f for f in flags), flags
    assert any(f.startswith("task differs in slow: prompt:") for f in flags), flags
    assert any("preprocessing differs in slow: max_side: 64 -> 32" in f for f in flags), flags
    real = copy.deepcopy(a)
    real["config"]["emulator"] = None
    assert any("real time (not emulated)" in f for f in compare([fast, real]).flags)


def test_print_and_html(runs):
    a, b = runs
    c = compare([a, b])
    console = Console(record=True, width=220)
    print_comparison(c, console)
    out = console.export_text()
    for text in (a["run_id"], b["run_id"], "baseline", "warning: images differ", "missing", "p95 latency s", "="):
        assert text in out, text
    assert re.search(r"exact match\s.*100%.*83%.*-17 pt", out)
    html = comparison_html(c)
    assert "<script" not in html and not re.search(r"(src|href)=", html)  # compare's page has no item filter
    assert "missing" in html and "images differ" in html and a["run_id"] in html


def test_shared_cells_get_paired_tests_and_a_warning_when_n_is_too_small(runs):
    a, b = runs
    c = compare([a, b])
    seq = PREFIX + "sequential"
    assert c.tests[seq][0] is None and c.tests[PREFIX + "concurrent"] == [None, None]
    found = {d.metric: d for d in c.tests[seq][1]}
    # images shared by content and label: img0-img3 (img4 was relabelled in B, img5 and img6 are in one run only)
    assert found["MAE"].n == 4 and found["MAE"].a == 0 and found["MAE"].b == 0 and found["MAE"].p == 1.0
    assert found["exact match"].test == "Wilcoxon signed-rank on per-image shares"  # A has two repeats
    assert found["latency p50 s"].n == 12 + 6
    head, rows = _grid(c, seq)
    verdicts = {cells[0][0]: cells[2][0] for cells in rows if cells[0][0].endswith("real?")}
    assert verdicts["MAE: real?"] == "p=1, n too small (n=4)"
    assert not any("MAE" in f for f in c.flags)  # no difference shown, nothing to warn about


def test_a_difference_on_too_few_images_is_flagged(runs):
    import copy

    a, b = runs
    b = copy.deepcopy(b)
    seq = PREFIX + "sequential"
    for entry in b["cells"]:
        if entry["id"] == seq:
            for i in range(4):
                entry["answers"][f"img{i}.png"]["value"] = i + 3
    c = compare([a, b])
    assert any(f.startswith(f"cell {seq}: MAE 0 vs 3 in {b['run_id']}") and "n=4 is too small" in f for f in c.flags), (
        c.flags
    )


def test_time_to_first_token_rows_only_when_a_cell_streamed(runs):
    a, b = runs
    assert not any(r.metric.startswith("ttft_") for r in compare([a, b]).rows)  # no cell streamed: no blank rows
    streamed = copy.deepcopy(b)
    for entry in streamed["cells"]:
        entry["summary"]["ttft_p50_s"] = 0.25
    rows = [r for r in compare([a, streamed]).rows if r.metric == "ttft_p50_s"]
    assert rows and all(r.values == [None, 0.25] for r in rows)


def test_ratios_and_token_counts_read_as_numbers_people_write():
    """No "x0.00" for a cell 300 times cheaper, no "1.14e+04" tokens (issue 26, part 5)."""
    from visionbench.report.compare import _fmt
    from visionbench.report.stats import count_text, ratio_text

    assert [ratio_text(r) for r in (0.0, 0.004, 0.35, 1.0, 12.3, 1234.0)] == [
        "x0",
        "<x0.01",
        "x0.35",
        "x1.00",
        "x12",
        "x1,234",
    ]
    assert _fmt(11400.0, "input_tokens") == "11,400" and _fmt(12.0, "errors") == "12"
    assert count_text(1.5) == "1.5" and count_text(250.4) == "250"


def test_compare_gives_a_verdict_across_runs_by_the_runs_rules(tmp_path):
    """compare says which cell of which run to pick: 20 images, run #1 answers every one right, run #0 none; the
    same run given twice (an A/A comparison) gets no pick; latencies are never tested across runs."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(20):
        Image.new("RGB", (40 + i, 30), (10 * i, 90, 160)).save(folder / f"img{i}.png")
    (folder / "labels.json").write_text(json.dumps({f"img{i}.png": {"person_count": i % 5} for i in range(20)}))
    (tmp_path / "w").mkdir()
    (tmp_path / "r").mkdir()
    wrong = _run(
        tmp_path / "w", folder, ["sequential"], options={"answers": {f"img{i}.png": i % 5 + 1 for i in range(20)}}
    )
    right = _run(tmp_path / "r", folder, ["sequential"], options={"answers": {f"img{i}.png": i % 5 for i in range(20)}})
    c = compare([wrong, right])
    assert c.verdict is not None and c.verdict.pick == "#1 " + PREFIX + "sequential"
    assert "significantly more than every other cell" in c.verdict.why
    console = Console(record=True, width=100)
    print_comparison(c, console)
    out = console.export_text()
    assert "Verdict across the runs: pick #1 sequential" in out
    assert "never tested against each other" in out and "SIMULATED" in out
    assert "Verdict across the runs" in comparison_html(c) and "banner sim" in comparison_html(c)
    [tested] = c.tests[PREFIX + "sequential"][1:]
    latency = next(d for d in tested if d.metric == "latency p50 s")
    assert latency.p is None  # two runs: not tested
    twice = copy.deepcopy(right)
    twice["run_id"] = right["run_id"] + "-again"
    same = compare([right, twice])
    assert same.verdict is not None and same.verdict.pick is None and "cannot be told apart" in same.verdict.why


#: A bundle written by visionbench before sweeps (the parent of commit fc193b4, "Sweep axes"), by `visionbench run`
#: of ``BEFORE_SWEEPS_CONFIG`` (its dataset then at that checkout's framework/sample_images): its cells record no
#: preprocessing of their own, its task no decimal mark, scorers or group_by.
BEFORE_SWEEPS = Path(__file__).parent / "data" / "bundle-before-sweeps.json"
BEFORE_SWEEPS_CONFIG = {
    "name": "before-sweeps",
    "dataset": {
        "path": str(Path(__file__).resolve().parents[1] / "framework" / "sample_images"),
        "labels": "labels.json",
        "label_field": "person_count",
        "include": ["group_3.jpg", "astronaut.jpg"],
    },
    "task": {"id": "count-people", "prompt": "How many people are in this image? Answer with a single integer."},
    "preprocessing": {"max_side": 320, "format": "jpeg", "quality": 85},
    "providers": {"local-faces": {"threshold": 0.3}},
    "matrix": [
        {
            "provider": "local-faces",
            "models": ["centerface"],
            "strategies": ["sequential", {"name": "concurrent", "max_concurrency": 2}],
        }
    ],
}


def test_a_bundle_from_before_sweeps_is_read_as_it_ran(tmp_path):
    written = json.loads(BEFORE_SWEEPS.read_text())
    assert all("preprocessing" not in c for c in written["cells"]) and "decimal" not in written["config"]["task"]
    old = bundle_mod.load(BEFORE_SWEEPS)
    assert [c.preprocessing for c in old.cells] == [{"max_side": 320, "format": "jpeg", "quality": 85}] * 2
    path = tmp_path / "before-sweeps.yaml"
    path.write_text(json.dumps(BEFORE_SWEEPS_CONFIG))
    new = bundle_mod.load(asyncio.run(run(load_plan(path, default_registry()), results_dir=tmp_path / "r")))
    assert [c.id for c in new.cells] == [c.id for c in old.cells]
    flags = compare([old, new]).flags
    # the same experiment at the same settings, written in two layouts: no false "differs" (before: preprocessing
    # for both cells, and the task's decimal mark None -> ".")
    assert not [f for f in flags if re.match(r"(task|preprocessing|images|labels) differ", f)], flags
    # a real change is still told, by the keys the old bundle did record and by those it did not
    changed = json.loads(BEFORE_SWEEPS.read_text())
    changed["config"]["preprocessing"]["max_side"] = 640
    changed["config"]["task"]["decimal"] = ","
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    flags = compare([new, bundle_mod.load(tmp_path / "changed.json")]).flags
    assert f"preprocessing differs in {old.run_id}: max_side: 320 -> 640" in flags
    assert f"task differs in {old.run_id}: decimal: '.' -> ','" in flags


def test_the_same_run_given_twice_is_warned_about(runs):
    a, b = runs
    flags = compare([a, b, a, b, b]).flags
    assert flags[:2] == [
        f"run {a['run_id']} is given 2 times (runs 1, 3): it is compared with itself, so its differences are all 0",
        f"run {b['run_id']} is given 3 times (runs 2, 4, 5): it is compared with itself, so its differences are all 0",
    ]
    assert not any("given" in f for f in compare([a, b]).flags)


def test_replayed_cells_have_no_wall_time_to_compare_and_latency_is_not_a_small_n_warning(runs):
    """A run whose answers were replayed did not take its time for them: its wall time is not a change against the
    baseline (it was 'x0.002, better'); and latency, never tested across runs, is not flagged as 'n too small'."""
    a, b = runs
    replayed = copy.deepcopy(b)
    for cell in replayed["cells"]:
        cell["summary"]["replayed"] = 5
    c = compare([a, replayed])
    row = c.row(PREFIX + "sequential", "wall_s")
    assert row.values[0] is not None and row.values[1] is None and row.deltas[1] is None
    assert not any("latency" in flag for flag in c.flags), c.flags
