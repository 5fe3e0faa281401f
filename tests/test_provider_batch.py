"""The provider-batch strategy: submit once, poll with backoff, map results by key, batch price, resume."""

import json

import pytest
from conftest import run_then_cancel, write_config
from fakeplugin import Scripted

from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.runner import run

STRATEGY = [{"name": "provider-batch", "poll_initial_s": 0.01, "poll_max_s": 0.02}]


@pytest.fixture(autouse=True)
def fresh_service():
    Scripted.jobs.clear()
    Scripted.submits = 0


async def test_batch_maps_results_and_prices_at_half(tmp_path, image_dir, registry, answers_for_labels):
    answers = dict(answers_for_labels)
    del answers["img4.png"]  # the service returns nothing for it
    options = {"answers": answers, "failures": {"img5.png": ["bad_request"]}, "batch_polls": 3}
    path = write_config(
        tmp_path, image_dir, STRATEGY, options=options, pricing=[{"match": "m1", "input": 1.0, "output": 5.0}]
    )
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", cache_dir=None))
    bundle_mod.validate(data)
    cell = data["cells"][0]
    assert Scripted.submits == 1 and Scripted.jobs["batch-1"]["polls"] == 3
    assert [cell["answers"][f"img{i}.png"]["value"] for i in range(4)] == [0, 1, 2, 3]
    assert cell["answers"]["img4.png"]["error"].startswith("missing")
    assert cell["answers"]["img5.png"]["error"].startswith("bad_request")
    ok = [r for r in data["records"] if r["error"] is None]
    assert len(ok) == 4 and all(r["batch"] and r["request_id"] == "batch-1" for r in ok)
    assert all(r["cost_usd"] == pytest.approx((1000 * 1.0 + 10 * 5.0) / 1e6 / 2) for r in ok)
    assert cell["extra"]["batch"]["job_id"] == "batch-1" and cell["extra"]["batch"]["turnaround_s"] > 0
    assert not json.loads((tmp_path / "results" / "batch_jobs.json").read_text())  # finished jobs are forgotten


async def test_interrupted_batch_is_resumed_not_resubmitted(tmp_path, image_dir, registry, answers_for_labels):
    options = {"answers": answers_for_labels, "batch_polls": 1000}
    path = write_config(tmp_path, image_dir, STRATEGY, options=options)
    plan = load_plan(path, registry)
    await run_then_cancel(plan, tmp_path / "results", "first", 0.2)
    assert Scripted.submits == 1
    saved = json.loads((tmp_path / "results" / "batch_jobs.json").read_text())
    assert [entry["job_id"] for entry in saved.values()] == ["batch-1"]
    assert bundle_mod.load(tmp_path / "results" / "first")["status"] == "interrupted"

    Scripted.jobs["batch-1"]["polls"] = 10_000  # the service finished it meanwhile
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", run_id="second", cache_dir=None))
    assert Scripted.submits == 1  # not paid twice
    cell = data["cells"][0]
    assert cell["extra"]["batch"]["resumed"] is True and cell["summary"]["errors"] == 0
    assert cell["summary"]["exact_match"] == 1.0


async def test_a_repeat_reports_its_own_job_not_the_previous_repeats(tmp_path, image_dir, registry, answers_for_labels):
    # One strategy instance serves both repeats: what it reports must come from this repeat's run alone.
    options = {"answers": answers_for_labels, "refuse_submits_from": 2}
    path = write_config(tmp_path, image_dir, STRATEGY, options=options, repeats=2)
    data = bundle_mod.load(await run(load_plan(path, registry), results_dir=tmp_path / "results", cache_dir=None))
    first, second = sorted(data["cells"], key=lambda c: c["repeat"])
    assert first["extra"]["batch"]["job_id"] == "batch-1" and first["summary"]["errors"] == 0
    assert second["extra"]["batch"]["job_id"] is None and second["extra"]["batch"]["state"] is None
    assert second["summary"]["errors"] == 6
    assert all(a["error"].startswith("bad_request: batch quota") for a in second["answers"].values())


async def test_a_batch_that_never_finishes_fails_its_items_and_keeps_the_job(
    tmp_path, image_dir, registry, answers_for_labels
):
    strategy = [{**STRATEGY[0], "max_wait_s": 0.05}]
    path = write_config(tmp_path, image_dir, strategy, options={"answers": answers_for_labels, "batch_polls": 10**6})
    data = bundle_mod.load(await run(load_plan(path, registry), results_dir=tmp_path / "results", cache_dir=None))
    cell = data["cells"][0]
    assert cell["summary"]["errors"] == 6 and cell["extra"]["batch"]["job_id"] == "batch-1"
    assert all("not done after 0.05 s" in a["error"] for a in cell["answers"].values())
    saved = json.loads((tmp_path / "results" / "batch_jobs.json").read_text())
    assert [entry["job_id"] for entry in saved.values()] == ["batch-1"]  # kept for a resume


async def test_a_saved_job_the_service_no_longer_knows_is_replaced_once(
    tmp_path, image_dir, registry, answers_for_labels
):
    options = {"answers": answers_for_labels, "batch_polls": 1000}
    path = write_config(tmp_path, image_dir, STRATEGY, options=options)
    await run_then_cancel(load_plan(path, registry), tmp_path / "results", "first", 0.2)
    Scripted.jobs.clear()  # the service forgot it (expired, deleted): polling it answers 404

    options["batch_polls"] = 1
    path = write_config(tmp_path, image_dir, STRATEGY, options=options)
    data = bundle_mod.load(await run(load_plan(path, registry), results_dir=tmp_path / "results", cache_dir=None))
    batch = data["cells"][0]["extra"]["batch"]
    assert Scripted.submits == 2 and batch["job_id"] == "batch-1" and batch["resumed"] is False
    assert batch["replaced"].startswith("batch-1: fatal: Batch batch-1 not found")
    assert data["cells"][0]["summary"]["errors"] == 0 and data["status"] == "complete"


async def test_a_batch_over_the_limit_goes_in_several_jobs_each_saved_and_resumed(
    tmp_path, image_dir, registry, answers_for_labels
):
    # 6 images, 2 requests a job: 3 jobs, each saved as it is submitted; interrupted while they run
    options = {"answers": answers_for_labels, "batch_polls": 1000, "batch_max_requests": 2}
    path = write_config(tmp_path, image_dir, STRATEGY, options=options)
    await run_then_cancel(load_plan(path, registry), tmp_path / "results", "first", 0.2)
    assert Scripted.submits == 3 and [len(j["requests"]) for j in Scripted.jobs.values()] == [2, 2, 2]
    saved = json.loads((tmp_path / "results" / "batch_jobs.json").read_text())
    assert sorted(entry["job_id"] for entry in saved.values()) == ["batch-1", "batch-2", "batch-3"]
    assert len({entry["cell"] for entry in saved.values()}) == 1
    assert sorted(i for entry in saved.values() for i in entry["ids"].values()) == [f"img{i}.png" for i in range(6)]

    # the service finished two of them meanwhile and forgot the third (expired): only its 2 items go again
    Scripted.jobs["batch-1"]["polls"] = Scripted.jobs["batch-2"]["polls"] = 10_000
    del Scripted.jobs["batch-3"]
    options["batch_polls"] = 1
    path = write_config(tmp_path, image_dir, STRATEGY, options=options)
    data = bundle_mod.load(await run(load_plan(path, registry), results_dir=tmp_path / "results", cache_dir=None))
    cell = data["cells"][0]
    # one new job, of those 2 (the fake service names it batch-3 again: it numbers the jobs it holds)
    assert Scripted.submits == 4 and len(Scripted.jobs["batch-3"]["requests"]) == 2
    batch = cell["extra"]["batch"]
    assert batch["jobs"] == 3 and sorted(batch["job_ids"]) == ["batch-1", "batch-2", "batch-3"]
    assert batch["requests_per_job"] == [2, 2, 2] and batch["resumed"] is True
    assert batch["replaced"].startswith("batch-3: fatal: Batch batch-3 not found")
    assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0
    assert not json.loads((tmp_path / "results" / "batch_jobs.json").read_text())  # all collected, all forgotten


def test_batch_needs_a_provider_with_a_batch_api(tmp_path, image_dir, registry):
    from visionbench.errors import ConfigError

    path = write_config(tmp_path, image_dir, STRATEGY, provider="local-faces")
    path.write_text(path.read_text().replace("- m1", "- centerface").replace("local-faces: {}", "local-faces: {}"))
    with pytest.raises(ConfigError, match="no batch API"):
        load_plan(path, registry)


def test_batch_turnaround_from_the_tally() -> None:
    from visionbench.strategies.provider_batch import ProviderBatch
    from visionbench.types import Record

    tally = ProviderBatch().tally()
    assert tally.summarize([]) == {"batch": {"turnaround_s": None}}
    tally.add(Record("c", ["a"], "p", "m", None, 0.5, 0.5, 0, 96))  # not through the batch API: left out
    tally.add(Record("c", ["a"], "p", "m", None, 2.0, 9.0, 1, 96, batch=True))
    tally.add(Record("c", ["b"], "p", "m", None, 1.0, 7.0, 1, 96, batch=True))
    assert tally.summarize([]) == {"batch": {"turnaround_s": 8.0}}
