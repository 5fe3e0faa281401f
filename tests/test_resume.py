"""An interrupted run keeps a valid bundle; resuming it runs only what is missing, in the same bundle."""

import pytest
from conftest import run_then_cancel, write_config

from visionbench import bundle as bundle_mod
from visionbench.cli import main
from visionbench.errors import ConfigError
from visionbench.plan import load_plan
from visionbench.resume import prepare_resume
from visionbench.runner import run


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
