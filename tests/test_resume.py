"""An interrupted run keeps a valid bundle; resuming it runs only what is missing, in the same bundle."""

import asyncio

import pytest
from conftest import run_then_cancel, write_config

from visionbench.cli import main
from visionbench.errors import BudgetExceeded, ConfigError
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.resume import prepare_resume
from visionbench.run.runner import run


async def interrupted_run(tmp_path, image_dir, registry, answers, strategies):
    path = write_config(tmp_path, image_dir, strategies, options={"answers": answers, "delay_s": 0.05})
    plan = load_plan(path, registry)
    await run_then_cancel(plan, tmp_path / "results", "r", 0.2)
    return bundle_mod.load(tmp_path / "results" / "r")


async def test_resume_finishes_only_what_is_missing(tmp_path, image_dir, registry, answers_for_labels):
    before = await interrupted_run(tmp_path, image_dir, registry, answers_for_labels, ["sequential", "concurrent"])
    assert before["status"] == "interrupted"
    answered_before = {r["item_ids"][0] for r in before["records"]}
    assert 0 < len(answered_before) < 6 and {r["cell"] for r in before["records"]} == {"scripted/m1/sequential"}

    plan, previous = prepare_resume(tmp_path / "results" / "r", registry)
    await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous)
    after = bundle_mod.load(tmp_path / "results" / "r")
    bundle_mod.validate(after)
    assert after["status"] == "complete" and len(after["resumed_at"]) == 1
    sent_now = [r.images[0].item_id for r in plan.providers["scripted"].requests]
    # the sequential cell asks only its missing images again; the concurrent cell had not started
    assert sent_now[: 6 - len(answered_before)] == sorted(set(answers_for_labels) - answered_before)
    assert len(sent_now) == 12 - len(answered_before)
    for cell in after["cells"]:
        assert cell["status"] == "complete" and cell["summary"]["exact_match"] == 1.0
    ids = [(r["cell"], r["item_ids"][0]) for r in after["records"]]
    assert len(ids) == len(set(ids)) == 12  # nothing lost, nothing duplicated
    old_end = max(r["end_s"] for r in before["records"])
    assert all(r["end_s"] >= old_end for r in after["records"][len(before["records"]) :])


async def test_resume_refuses_complete_runs_and_changed_datasets(tmp_path, image_dir, registry, answers_for_labels):
    await interrupted_run(tmp_path, image_dir, registry, answers_for_labels, ["sequential"])
    (image_dir / "img0.png").write_bytes((image_dir / "img1.png").read_bytes())
    with pytest.raises(ConfigError, match="dataset changed"):
        prepare_resume(tmp_path / "results" / "r", registry)
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels})
    plan = load_plan(path, registry)
    await run(plan, results_dir=tmp_path / "results", run_id="done", cache_dir=None)
    with pytest.raises(ConfigError, match="complete"):
        prepare_resume(tmp_path / "results" / "done", registry)


def test_cli_run_needs_config_or_resume(capsys):
    assert main(["run"]) == 2
    assert "--resume" in capsys.readouterr().err


def _rewrite(run_dir, change) -> None:
    """Edit a finished run's bundle as a test's stand-in for what happened to it (a kill, a recovered service)."""
    data = bundle_mod.load(run_dir)
    change(data)
    bundle_mod.write_atomic(run_dir / "bundle.json", data)


async def test_resume_of_an_adaptive_cell_gives_tier_2_to_images_that_only_had_tier_1(
    tmp_path, image_dir, registry, answers_for_labels
):
    adaptive = [{"name": "adaptive", "escalate_at": 3, "tier1": {"max_side": 32}}]
    path = write_config(tmp_path, image_dir, adaptive, options={"answers": answers_for_labels})
    await run(load_plan(path, registry), results_dir=tmp_path / "results", run_id="a", cache_dir=None)

    def killed_between_tiers(data):  # as a kill -9 after tier 1 of every image, before any tier 2
        data["records"] = [r for r in data["records"] if r["tier"] == 1]
        data["status"], data["cells"] = "running", []

    _rewrite(tmp_path / "results" / "a", killed_between_tiers)
    plan, previous = prepare_resume(tmp_path / "results" / "a", registry)
    await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous)
    sent = sorted((r.images[0].width, r.images[0].item_id) for r in plan.providers["scripted"].requests)
    # Only the images tier 1 sent on are unfinished: each is asked again, tiers 1 and 2 (an item is the unit).
    assert sent == [(32, f"img{i}.png") for i in (3, 4, 5)] + [(64, f"img{i}.png") for i in (3, 4, 5)]
    after = bundle_mod.load(tmp_path / "results" / "a")
    cell = after["cells"][0]
    assert cell["extra"]["tier2_items"] == 3 and cell["extra"]["tier1_filter"]["recall"] == 1.0
    assert after["status"] == "complete"


async def test_a_resumed_run_keeps_its_budget_and_counts_what_it_spent(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": {}})  # $0.001 a request
    with pytest.raises(BudgetExceeded):
        await run(load_plan(path, registry), results_dir=tmp_path / "results", run_id="b", max_cost_usd=0.0035)
    before = bundle_mod.load(tmp_path / "results" / "b")
    assert before["status"] == "stopped" and before["budget"] == {"max_cost_usd": 0.0035}
    assert len(before["records"]) == 4

    plan, previous = prepare_resume(tmp_path / "results" / "b", registry)
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.0050 of --max-cost \$0\.0035"):
        await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous)
    assert len(plan.providers["scripted"].requests) == 1  # not another $0.0035

    plan, previous = prepare_resume(tmp_path / "results" / "b", registry)  # a new budget replaces it
    await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous, max_cost_usd=1.0)
    after = bundle_mod.load(tmp_path / "results" / "b")
    assert after["status"] == "complete" and after["budget"] == {"max_cost_usd": 1.0}
    assert len(after["records"]) == 6


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "ten"])
def test_a_budget_that_is_not_a_positive_amount_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "configs/quickstart.yaml", "--max-cost", value])
    assert exit_.value.code == 2 and "--max-cost" in capsys.readouterr().err


async def test_failed_items_end_incomplete_and_retry_errors_asks_only_them(
    tmp_path, image_dir, registry, answers_for_labels
):
    options = {"answers": answers_for_labels, "failures": {"img5.png": ["bad_request"]}}
    path = write_config(tmp_path, image_dir, ["sequential"], options=options)
    await run(load_plan(path, registry), results_dir=tmp_path / "results", run_id="f", cache_dir=None)
    before = bundle_mod.load(tmp_path / "results" / "f")
    bundle_mod.validate(before)
    assert before["status"] == "incomplete" and before["cells"][0]["summary"]["errors"] == 1
    with pytest.raises(ConfigError, match="1 failed; add --retry-errors"):
        prepare_resume(tmp_path / "results" / "f", registry)

    def service_recovered(data):
        data["config"]["providers"]["scripted"]["failures"] = {}

    _rewrite(tmp_path / "results" / "f", service_recovered)
    plan, previous = prepare_resume(tmp_path / "results" / "f", registry, retry_errors=True)
    await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous, retry_errors=True)
    assert [r.images[0].item_id for r in plan.providers["scripted"].requests] == ["img5.png"]
    after = bundle_mod.load(tmp_path / "results" / "f")
    assert after["status"] == "complete" and after["cells"][0]["summary"]["exact_match"] == 1.0
    assert len(after["records"]) == 7  # the failed request stays on record beside the one that answered


async def test_the_cli_says_incomplete_with_exit_4_and_names_the_next_command(
    tmp_path, image_dir, registry, answers_for_labels, monkeypatch, capsys
):
    options = {"answers": answers_for_labels, "failures": {"img5.png": ["bad_request"], "img4.png": ["bad_request"]}}
    path = write_config(tmp_path, image_dir, ["sequential"], options=options)
    monkeypatch.setattr("visionbench.cli.default_registry", lambda: registry)
    code = await asyncio.to_thread(main, ["run", str(path), "--results", str(tmp_path / "res"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 4
    assert "Failed items" in out and "bad_request" in out and "bad image" in out
    assert "--retry-errors" in err and str(tmp_path / "res") in err
    code = await asyncio.to_thread(main, ["run", "--retry-errors", str(path)])
    assert code == 2 and "goes with --resume" in capsys.readouterr().err


async def test_a_run_resumes_from_any_folder(tmp_path, image_dir, registry, answers_for_labels, monkeypatch):
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels, "delay_s": 0.05})
    path.write_text(path.read_text().replace(str(image_dir), "images"))  # a config with a relative dataset path
    monkeypatch.chdir(tmp_path)
    await run_then_cancel(load_plan("exp.yaml", registry), tmp_path / "results", "c", 0.12)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plan, previous = prepare_resume(tmp_path / "results" / "c", registry)
    await run(plan, results_dir=tmp_path / "results", cache_dir=None, previous=previous)
    assert bundle_mod.load(tmp_path / "results" / "c")["status"] == "complete"
