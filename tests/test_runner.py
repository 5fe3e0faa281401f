"""Strategies end to end through the runner with the scripted test provider; bundles checked against the schema."""

import json

import jsonschema
import pytest
from conftest import run_then_cancel, write_config

from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.runner import run


async def run_config(path, registry, tmp_path):
    plan = load_plan(path, registry)
    bundle_path = await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    data = bundle_mod.load(bundle_path)
    bundle_mod.validate(data)
    return plan, data


def summary(data, cell_suffix):
    [entry] = [c for c in data["cells"] if c["id"].endswith(cell_suffix)]
    return entry


async def test_all_four_strategies_answer_every_item(tmp_path, image_dir, registry, answers_for_labels):
    strategies = [
        "sequential",
        {"name": "concurrent", "max_concurrency": 3},
        {"name": "single-prompt", "chunk_size": 4},
        {"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 16}},
    ]
    path = write_config(tmp_path, image_dir, strategies, options={"answers": answers_for_labels})
    plan, data = await run_config(path, registry, tmp_path)
    assert data["status"] == "complete" and data["simulated"] is True
    assert [c["strategy"] for c in data["cells"]] == ["sequential", "concurrent", "single-prompt", "adaptive"]
    for cell in data["cells"]:
        s = cell["summary"]
        assert s["items"] == 6 and s["errors"] == 0 and s["exact_match"] == 1.0 and s["mae"] == 0.0
        assert {a["value"] for a in cell["answers"].values()} == set(range(6))
    assert summary(data, "sequential")["summary"]["requests"] == 6
    # single-prompt: 6 images in chunks of 4 -> 2 requests of 4 and 2 images, labelled Image 1..N
    assert summary(data, "single-prompt")["summary"]["requests"] == 2
    multi = [r for r in plan.providers["scripted"].requests if len(r.images) > 1]
    assert [len(r.images) for r in multi] == [4, 2]
    assert "Image 1 to Image 4" in multi[0].prompt and multi[0].response_schema["maxItems"] == 4
    # every record carries its timing, attempts and usage
    for rec in data["records"]:
        assert rec["attempts"] == 1 and rec["end_s"] >= rec["start_s"] and rec["usage"]["input_tokens"] > 0
        assert rec["usage"]["thinking_tokens"] is None  # not reported stays unknown, not zero


async def test_adaptive_tiers_and_filter_precision_recall(tmp_path, image_dir, registry):
    # tier-1 answers at low resolution are what the scripted table says; labels are 0..5.
    answers = {"img0.png": 0, "img1.png": 4, "img2.png": 2, "img3.png": 3, "img4.png": 1, "img5.png": 5}
    strategies = [{"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 16}, "tier2_max_side": 48}]
    path = write_config(tmp_path, image_dir, strategies, options={"answers": answers})
    plan, data = await run_config(path, registry, tmp_path)
    records = data["records"]
    tier1 = [r for r in records if r["tier"] == 1]
    tier2 = [r for r in records if r["tier"] == 2]
    assert len(tier1) == 6 and all(r["max_side"] == 16 for r in tier1)
    # escalated: tier-1 answers >= 3 -> img1, img3, img5
    assert sorted(r["item_ids"][0] for r in tier2) == ["img1.png", "img3.png", "img5.png"]
    assert all(r["max_side"] == 48 for r in tier2)
    sizes = {max(im.width, im.height) for req in plan.providers["scripted"].requests for im in req.images}
    assert sizes == {16, 48}
    f = data["cells"][0]["extra"]["tier1_filter"]
    # truth (label >= 3): img3, img4, img5; chosen: img1, img3, img5 -> TP 2, FP 1, FN 1
    assert (f["true_positives"], f["false_positives"], f["false_negatives"]) == (2, 1, 1)
    assert f["precision"] == pytest.approx(2 / 3) and f["recall"] == pytest.approx(2 / 3)
    assert data["cells"][0]["summary"]["requests"] == 9


async def test_retries_are_recorded_and_permanent_failures_stay_per_item(
    tmp_path, image_dir, registry, answers_for_labels
):
    failures = {"img1.png": ["rate_limited", "transient"], "img2.png": ["bad_request"]}
    options = {"answers": answers_for_labels, "failures": failures, "retry_after_s": 0.01}
    retry = {"max_attempts": 3, "base_delay_s": 0.0, "max_delay_s": 0.05, "timeout_s": 5}  # waits the 0.01 s asked
    path = write_config(
        tmp_path, image_dir, [{"name": "concurrent", "max_concurrency": 2}], options=options, retry=retry
    )
    _, data = await run_config(path, registry, tmp_path)
    by_item = {r["item_ids"][0]: r for r in data["records"]}
    assert by_item["img1.png"]["attempts"] == 3 and by_item["img1.png"]["error"] is None
    assert by_item["img2.png"]["attempts"] == 1 and by_item["img2.png"]["error"]["kind"] == "bad_request"
    s = data["cells"][0]["summary"]
    assert s["errors"] == 1 and s["answered"] == 5 and s["attempts"] == 8
    assert data["cells"][0]["answers"]["img2.png"]["error"].startswith("bad_request")


async def test_single_prompt_wrong_length_reply_is_per_item_error(tmp_path, image_dir, registry):
    options = {"answers": {}, "reply_template": "Sure! [1, 2]"}
    path = write_config(tmp_path, image_dir, [{"name": "single-prompt", "chunk_size": 3}], options=options)
    _, data = await run_config(path, registry, tmp_path)
    cell = data["cells"][0]
    assert cell["summary"]["errors"] == 6
    assert all("2 answers for 3 images" in a["error"] for a in cell["answers"].values())
    assert all(r["raw_text"] == "Sure! [1, 2]" for r in data["records"])


async def test_broken_image_is_per_item_error(tmp_path, image_dir, registry, answers_for_labels):
    (image_dir / "img3.png").write_bytes(b"not an image at all")
    path = write_config(
        tmp_path, image_dir, ["sequential", {"name": "single-prompt"}], options={"answers": answers_for_labels}
    )
    _, data = await run_config(path, registry, tmp_path)
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 1 and cell["summary"]["answered"] == 5
        assert cell["answers"]["img3.png"]["error"].startswith("image:")
    sent = [r for r in data["records"] if r["attempts"] > 0 and r["cell"].endswith("single-prompt")]
    assert len(sent) == 1 and "img3.png" not in sent[0]["item_ids"]


async def test_interrupted_run_leaves_a_valid_bundle(tmp_path, image_dir, registry, answers_for_labels):
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels, "delay_s": 0.05})
    plan = load_plan(path, registry)
    await run_then_cancel(plan, tmp_path / "results", "r1", 0.18)
    data = json.loads((tmp_path / "results" / "r1" / "bundle.json").read_text())
    bundle_mod.validate(data)
    assert data["status"] == "interrupted"
    assert 1 <= len(data["records"]) < 6
    assert data["cells"][0]["status"] == "interrupted"
    assert data["cells"][0]["summary"]["answered"] == len(data["records"])


async def test_repeats_make_one_cell_entry_each(tmp_path, image_dir, registry, answers_for_labels):
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels}, repeats=2)
    _, data = await run_config(path, registry, tmp_path)
    assert [(c["id"], c["repeat"]) for c in data["cells"]] == [
        ("scripted/m1/sequential", 0),
        ("scripted/m1/sequential", 1),
    ]
    assert sorted({r["repeat"] for r in data["records"]}) == [0, 1]


async def test_progress_counts_each_item_once_per_repeat_whatever_its_tiers(tmp_path, image_dir, registry):
    class Seen:
        def __init__(self):
            self.cells: list[tuple[str, int, int]] = []

        def start_cell(self, label, total):
            self.cells.append((label, total, 0))

        def advance(self, n):
            label, total, done = self.cells[-1]
            self.cells[-1] = (label, total, done + n)

    strategies = [{"name": "adaptive", "escalate_at": 0, "tier1": {"max_side": 16}}]  # every image goes to tier 2
    path = write_config(tmp_path, image_dir, strategies, options={"answers": {}}, repeats=2)
    plan = load_plan(path, registry)
    seen = Seen()
    bundle_path = await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", progress=seen)
    data = bundle_mod.load(bundle_path)
    assert seen.cells == [("scripted/m1/adaptive #1", 6, 6), ("scripted/m1/adaptive #2", 6, 6)]
    assert len(data["records"]) == 24  # two tiers, two repeats
    assert sorted((r["repeat"], r["tier"]) for r in data["records"]) == sorted(
        (repeat, tier) for repeat in (0, 1) for tier in (1, 2) for _ in range(6)
    )


def test_schema_rejects_a_broken_bundle(tmp_path):
    with pytest.raises(jsonschema.ValidationError):
        bundle_mod.validate({"schema_version": 1, "run_id": "x"})


async def test_setup_is_frozen_out_of_the_collector_while_cells_run_and_thawed_after(
    tmp_path, image_dir, registry, answers_for_labels
):
    import gc

    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels})
    plan = load_plan(path, registry)
    provider = plan.providers["scripted"]
    generate, frozen = provider.generate, []

    async def watched(request):
        frozen.append(gc.get_freeze_count())
        return await generate(request)

    provider.generate = watched
    assert gc.get_freeze_count() == 0
    await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    assert len(frozen) == 6 and min(frozen) > 0  # the plan, modules and SDK types: not walked mid-run
    assert gc.get_freeze_count() == 0  # and handed back to the collector when the cells are done

    gc.freeze()  # a host program that freezes objects itself (a pre-fork server, say)...
    try:
        host_frozen = gc.get_freeze_count()
        await run(
            load_plan(path, registry),
            results_dir=tmp_path / "r2",
            cache_dir=tmp_path / "cache",
        )
        # ...keeps them frozen (some may since have been freed), and nothing of the run's is added
        assert host_frozen - 100 < gc.get_freeze_count() <= host_frozen
    finally:
        gc.unfreeze()


async def test_images_are_prepared_before_each_cells_clock(
    tmp_path, image_dir, registry, answers_for_labels, monkeypatch
):
    """No cell builds an image while its clock runs, so the first cell at a size does not pay for preprocessing in
    its wall time (an adaptive cell's low-resolution pass included); the time it took is ``preprocess_s``."""
    from visionbench.run import readahead

    built_in_cell = []
    real_build = readahead.ReadAhead.build

    async def build(self, item, settings):
        built_in_cell.append((item.id, settings.max_side))
        return await real_build(self, item, settings)

    monkeypatch.setattr(readahead.ReadAhead, "build", build)
    adaptive = {"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 16}}
    strategies = ["sequential", adaptive, {"name": "concurrent"}]
    path = write_config(tmp_path, image_dir, strategies, options={"answers": answers_for_labels})
    _, data = await run_config(path, registry, tmp_path)
    assert built_in_cell == []
    first, low_pass, _ = (c["summary"]["preprocess_s"] for c in data["cells"])
    assert first > 0 and low_pass > 0  # the full size built for the first; the 16 px pass for the adaptive one
    assert all(c["summary"]["errors"] == 0 for c in data["cells"])


async def test_without_a_cache_images_are_prepared_in_the_cell(tmp_path, image_dir, registry, answers_for_labels):
    """With ``--no-cache`` there is nowhere to keep images built ahead: they are built in the cell, as before."""
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels})
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", cache_dir=None))
    [cell] = data["cells"]
    assert cell["summary"]["preprocess_s"] == 0.0 and cell["summary"]["errors"] == 0
