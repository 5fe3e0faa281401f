"""Every strategy end to end through the real google-genai and anthropic SDKs over HTTP, against the local
emulator started by the run itself on loopback: answers, usage, cost, rate limits and faults."""

import re
import time
from pathlib import Path

import pytest
import yaml

from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry
from visionbench.run.runner import run

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
EXACT = {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0}
NO_FAULTS = {
    "http_500": 0,
    "http_503": 0,
    "http_529": 0,
    "malformed_body": 0,
    "drop_connection": 0,
    "slow": {"probability": 0, "extra_s": 0},
}
STRATEGIES = [
    "sequential",
    {"name": "concurrent", "max_concurrency": 4},
    {"name": "single-prompt", "chunk_size": 5},
    {"name": "adaptive", "escalate_at": 2, "tier1": {"max_side": 384}},
    {"name": "provider-batch", "poll_initial_s": 0.01, "poll_max_s": 0.05},
]


def write_experiment(tmp_path, *, profile, strategies=STRATEGIES, retry=None, providers=("gemini", "anthropic")):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 7, "time_scale": 0, "defaults": profile, "models": {"*": {}}}))
    models = {"gemini": "gemini-3.5-flash", "anthropic": "claude-haiku-4-5", "openai": "gpt-6.1-terra"}
    config = {
        "name": "e2e",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count"},
        "task": {"prompt": "How many people are in this image? Answer with a single integer.", "answer": "integer"},
        "preprocessing": {"max_side": 512},
        "emulator": {"profiles": str(profiles)},
        "retry": retry or {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [{"provider": p, "models": [models[p]], "strategies": strategies} for p in providers],
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def run_experiment(path, tmp_path):
    registry = default_registry()
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    return data


async def test_every_strategy_through_both_sdks(tmp_path):
    profile = {
        "answers": EXACT,
        "faults": NO_FAULTS,
        "batch": {"turnaround_s": 0},
        "rate_limit": {"requests_per_minute": None},
    }
    data = await run_experiment(write_experiment(tmp_path, profile=profile), tmp_path)
    assert data["status"] == "complete" and data["simulated"] is True
    assert len(data["cells"]) == 10
    for cell in data["cells"]:
        s = cell["summary"]
        assert s["errors"] == 0 and s["exact_match"] == 1.0, cell["id"]
        assert s["cost_usd"] > 0 and s["input_tokens"] > 0, cell["id"]
    records = data["records"]
    assert all(r["simulated"] for r in records if r["attempts"])
    gemini = [r for r in records if r["cell"] == "gemini/gemini-3.5-flash/sequential"]
    # a 512x384 JPEG: Gemini 3's documented 1120 tokens at the default media resolution, reported as IMAGE
    assert all(r["usage"]["image_tokens"] == 1120 for r in gemini)
    assert all(r["model_version"] and r["request_id"] for r in gemini)
    claude = [r for r in records if r["cell"] == "anthropic/claude-haiku-4-5/sequential"]
    assert all(r["usage"]["image_tokens"] is None and r["usage"]["thinking_tokens"] is None for r in claude)
    # the batch cells cost half of the sequential ones: same tokens, batch price
    for provider in ("gemini/gemini-3.5-flash", "anthropic/claude-haiku-4-5"):
        by_label = {c["label"]: c["summary"] for c in data["cells"] if c["id"].startswith(provider)}
        assert by_label["provider-batch"]["input_tokens"] == by_label["sequential"]["input_tokens"]
        assert by_label["provider-batch"]["cost_usd"] == pytest.approx(by_label["sequential"]["cost_usd"] / 2)
        assert by_label["single-prompt"]["requests"] == 2


async def test_rate_limits_are_honoured_with_retry_after(tmp_path):
    profile = {"answers": EXACT, "faults": NO_FAULTS, "rate_limit": {"requests_per_minute": 3, "window_s": 0.4}}
    path = write_experiment(
        tmp_path,
        profile=profile,
        strategies=[{"name": "concurrent", "max_concurrency": 8}],
        retry={"max_attempts": 10, "base_delay_s": 0.0, "max_delay_s": 1.0, "timeout_s": 20},
    )
    data = await run_experiment(path, tmp_path)
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0
        retried = [r for r in data["records"] if r["cell"] == cell["id"] and r["attempts"] > 1]
        assert retried, "the emulator's 429s should have forced retries"
        # backoff slept what retry-after asked (up to the 0.4 s window): the exponential backoff is 0
        assert max(r["backoff_s"] for r in retried) > 0.05
        assert cell["summary"]["wall_s"] >= 10 / 3 * 0.4 * 0.9  # 10 requests at 3 per 0.4 s


async def test_a_retry_after_of_a_day_fails_the_items_in_seconds_at_fixed_and_auto_concurrency(tmp_path):
    # One request a day: every later request is refused with a retry-after of about 86400 s (Gemini's RetryInfo and
    # retry-after headers, Anthropic's and OpenAI's retry-after(-ms)), through the real SDKs.
    profile = {"answers": EXACT, "faults": NO_FAULTS, "rate_limit": {"requests_per_minute": 1, "window_s": 86400}}
    strategies = [{"name": "concurrent", "max_concurrency": 4}, {"name": "concurrent", "max_concurrency": "auto"}]
    path = write_experiment(
        tmp_path,
        profile=profile,
        strategies=strategies,
        retry={"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 60, "timeout_s": 20},
        providers=("gemini", "anthropic", "openai"),
    )
    started = time.monotonic()
    data = await run_experiment(path, tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the run took {elapsed:.0f} s"  # before: asleep for a day
    assert data["status"] == "incomplete" and len(data["cells"]) == 6
    answered = [r for r in data["records"] if r["error"] is None]
    failed = [r for r in data["records"] if r["error"] is not None]
    assert len(answered) == 3 and len(failed) == 6 * 10 - 3  # the one request a day of each model
    for record in failed:
        assert record["attempts"] == 1 and record["backoff_s"] == 0 and record["error"]["kind"] == "rate_limited"
        message = record["error"]["message"]
        assert re.match(
            r"the service asked to wait (8639\d(\.\d+)?|86400) s, more than retry\.max_delay_s = 60 s", message
        )


async def test_faults_are_retried_and_permanent_failures_stay_per_item(tmp_path):
    faults = {**NO_FAULTS, "http_503": 0.25, "http_529": 0.1, "malformed_body": 0.1, "drop_connection": 0.1}
    profile = {"answers": EXACT, "faults": faults, "rate_limit": {"requests_per_minute": None}}
    path = write_experiment(
        tmp_path,
        profile=profile,
        strategies=[{"name": "concurrent", "max_concurrency": 4}],
        retry={"max_attempts": 3, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 20},
    )
    data = await run_experiment(path, tmp_path)
    assert data["status"] == "incomplete"  # the permanent failures
    records = data["records"]
    for cell in data["cells"]:
        mine = [r for r in records if r["cell"] == cell["id"]]
        assert sorted(r["item_ids"][0] for r in mine) == sorted(cell["answers"])  # one record per item, none lost
        assert len(cell["answers"]) == 10
        for answer in cell["answers"].values():
            assert (answer["error"] is None) != (answer["value"] is None)  # an answer or a recorded error
            assert answer["error"] is not None or answer["value"] == cell_label(data, answer["item_id"])
    # the draws are seeded, so this run always has both: faults retried into answers, and items that failed
    # all three attempts, recorded as errors while the rest of the cell was answered
    assert any(r["attempts"] > 1 and r["error"] is None for r in records)
    failed = [r for r in records if r["error"]]
    assert failed and all(r["attempts"] == 3 and r["error"]["kind"] == "transient" for r in failed)
    assert sum(c["summary"]["answered"] for c in data["cells"]) == 20 - len(failed)


def cell_label(data, item_id):
    return next(item["label"] for item in data["items"] if item["id"] == item_id)


async def test_plan_formulas_agree_with_the_count_tokens_endpoints(tmp_path):
    from visionbench.cli import _estimate

    profile = {"answers": EXACT, "faults": NO_FAULTS}
    path = write_experiment(tmp_path, profile=profile, strategies=["sequential", {"name": "single-prompt"}])
    registry = default_registry()
    formula = await _estimate(load_plan(path, registry), False)
    counted = await _estimate(load_plan(path, registry), True)
    for f, c in zip(formula, counted):
        assert c.counted and not f.counted
        assert f.requests == c.requests and f.cost_usd > 0 and c.cost_usd > 0
        # same image formula on both sides; only the text-token rule of thumb differs a little
        assert (c.image_tokens + c.text_tokens) == pytest.approx(f.image_tokens + f.text_tokens, rel=0.05), f.cell_id


async def test_a_manifest_dataset_runs_against_the_emulator(tmp_path):
    """A manifest (a list of image paths) with `emulator:` is answered from the images and labels beside it; it was
    a crash (exit 70: "emulator dataset ... is not a folder")."""
    import json
    import shutil

    names = sorted(p.name for p in SAMPLES.glob("*.jpg"))[:4]
    labels = json.loads((SAMPLES / "labels.json").read_text())
    for name in names:
        shutil.copy(SAMPLES / name, tmp_path / name)
    (tmp_path / "list.json").write_text(json.dumps(names))
    (tmp_path / "labels4.json").write_text(json.dumps({n: labels[n] for n in names}))
    profile = {"answers": EXACT, "faults": NO_FAULTS}
    path = write_experiment(tmp_path, profile=profile, strategies=["sequential"], providers=("gemini",))
    config = yaml.safe_load(path.read_text())
    config["dataset"] = {"path": "list.json", "labels": "labels4.json", "label_field": "person_count"}
    path.write_text(yaml.safe_dump(config))
    data = await run_experiment(path, tmp_path)
    assert data["status"] == "complete"
    # the config sets no time scale: the bundle records the profiles' (0), so reports know what its times are
    assert data["config"]["emulator"]["time_scale"] == 0.0
    answers = data["cells"][0]["answers"]
    assert {i: a["value"] for i, a in answers.items()} == {n: labels[n]["person_count"] for n in names}
