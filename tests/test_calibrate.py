"""``visionbench calibrate``: emulator profiles fitted to runs' records, the figures recovered, the CLI, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from visionbench.cli import main
from visionbench.emulator.engine import Engine, Outcome
from visionbench.emulator.profile_schema import Latency, load_profiles
from visionbench.errors import InputError
from visionbench.results import bundle as bundle_mod
from visionbench.results.model import record_to_json
from visionbench.run.calibrate import PERSON_CAP, calibrate, load_runs
from visionbench.services import tokens as tk
from visionbench.types import Record, Usage

ROOT = Path(__file__).resolve().parents[1]
SEED_PROFILE = ROOT / "framework" / "emulator" / "profiles" / "seed-notebook.yaml"

#: The known profile: every figure the fit should give back. The time scale is 0.2 (a 3 s base is 0.6 s of wall
#: time): the harness's own time per request (the SDK, loopback HTTP, the event loop both share: ~10 ms at 10 in
#: flight, more under load, ~150 ms at 40) is multiplied by 1 / time_scale in modelled seconds and lands in the
#: base, and its spread in the jitter, so both are large beside it and concurrency is kept at 10.
KNOWN = {
    "base_s": 3.0,
    "per_input_token_s": 0.001,
    "output_tokens_per_s": 80,
    "thinking_per_image": 40,
    "thinking_per_person": 2,
    "jitter": 0.05,
}
QUIET_FAULTS = {"http_500": 0, "http_503": 0, "http_529": 0, "malformed_body": 0, "drop_connection": 0}


def _rows(folder: Path, n: int = 40) -> Path:
    """``n`` small distinct images, each with a prompt of its own length (0 to ~6,000 tokens) and a people count
    (0-300) in another order, so input tokens and thinking vary apart."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    people = rng.permutation(np.linspace(0, 300, n).round().astype(int))
    lengths = rng.permutation(np.linspace(0, 24_000, n).astype(int))
    rows = []
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"img{k}.png")
        note = ("lorem ipsum " * 2_000)[: lengths[k]]
        rows.append({"id": f"i{k}", "image": f"img{k}.png", "note": note, "answer": int(people[k])})
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, name: str, profiles: Path, rows: Path, *, time_scale: float, repeats: int = 1) -> Path:
    config = {
        "name": name,
        "dataset": {"path": str(rows)},
        "task": {"id": "count", "prompt": "{note}\nHow many people? Reply with an integer.", "answer": "integer"},
        "emulator": {"profiles": str(profiles), "time_scale": time_scale},
        "retry": {"max_attempts": 1, "timeout_s": 60},
        "repeats": repeats,
        "matrix": [
            {
                "provider": "gemini",
                "models": ["gemini-3.5-flash"],
                "model_params": {"max_output_tokens": 16384, "stream": True},
                "strategies": [{"name": "concurrent", "max_concurrency": 10}],
            }
        ],
    }
    path = tmp_path / f"{name}-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["run", str(config), "--results", str(results), "--no-report", "--quiet"]) == 0
    capsys.readouterr()
    [run] = [p for p in results.iterdir() if p.is_dir()]
    return run


def _within(found: float, want: float, tolerance: float = 0.10) -> bool:
    return abs(found - want) <= tolerance * want


@pytest.mark.slow
def test_calibrate_recovers_a_known_profile_and_a_run_made_with_it_names_the_run(tmp_path, capsys):
    rows = _rows(tmp_path / "data")
    known = tmp_path / "known.yaml"
    profile = {"capacity": 64, "latency": KNOWN, "faults": QUIET_FAULTS, "rate_limit": {"requests_per_minute": None}}
    known.write_text(yaml.safe_dump({"seed": 3, "models": {"gemini-3.5-flash": profile}}))
    run = _run(_config(tmp_path, "known", known, rows, time_scale=0.2, repeats=4), tmp_path / "r1", capsys)

    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", str(run), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    header, row = printed.splitlines()[:2]
    assert header.split()[:5] == ["model", "n", "base", "s", "s/1k"] and "R²" in header
    [fit] = calibrate(load_runs([run])).fits  # what the command fitted (a request stalled over 4 sd is left out)
    assert row.split()[:2] == ["gemini-3.5-flash", str(fit.n)] and 120 <= fit.n <= 160

    text = out.read_text()
    run_id = run.name
    assert text.startswith("# Emulator profiles fitted by `visionbench calibrate`")
    assert f"run {run_id} (simulated): {run.resolve()}" in text
    assert f"service time over {fit.n} requests: R² 0." in text and f"streamed ({fit.streamed}): TTFT" in text
    profiles = load_profiles(out)
    assert profiles.time_scale == 1.0
    [source] = profiles.calibrated_from
    assert (source.run_id, source.path, source.models, source.simulated) == (
        run_id,
        str(run.resolve()),
        ["gemini-3.5-flash"],
        True,
    )
    latency = profiles.models["gemini-3.5-flash"].latency
    for key, want in KNOWN.items():
        assert _within(getattr(latency, key), want), (key, getattr(latency, key), want)
    assert latency.thinking_tokens == 0 and latency.multi_image_thinking == 0  # one image a request: none
    assert profiles.models["gemini-3.5-flash"].faults.http_503 == 0  # none failed

    # The streamed records' TTFT (base + per input token + thinking / rate) gives the same figures again.
    assert fit.ttft_base_s is not None and _within(fit.ttft_base_s, KNOWN["base_s"])
    assert fit.ttft_per_input_token_s is not None and _within(fit.ttft_per_input_token_s, KNOWN["per_input_token_s"])
    assert fit.streamed == 160 and fit.attempts == 160 and fit.rate_5xx == 0

    # A run made with the calibrated profile says which run calibrated it.
    again = _run(_config(tmp_path, "again", out, rows, time_scale=0.0), tmp_path / "r2", capsys)
    data = bundle_mod.load(again)
    bundle_mod.validate(data)
    assert data["environment"]["calibrated_from"] == [
        {"run_id": run_id, "path": str(run.resolve()), "models": ["gemini-3.5-flash"], "simulated": True}
    ]
    assert "calibrated_from" not in bundle_mod.load(run)["environment"]  # the hand-written profile: not calibrated


def _seed_shaped_bundle(path: Path) -> Path:
    """A run shaped like the seed notebook's (gemini-3-pro-preview; the bus, the group and the two crowds: 4, 9, 96
    and 164 people; one image a request, and all four in one), its times and tokens as the emulator computes them
    with the seed-notebook profile (``Engine.thinking`` and ``Engine.timing``: the same draws, no HTTP). Beside the
    seed's own requests, each media resolution level (so input tokens vary; on Gemini 3 they do not with pixels)
    and the images two at a time (so the extra thinking per added image can be told from the fixed part), 12
    times over: the seed's nine requests alone cannot tell base from input tokens."""
    engine = Engine(load_profiles(SEED_PROFILE), None, 1.0)
    model = "gemini-3-pro-preview"
    state = engine.state(model, "gemini")
    prompt = "Count the people in this image. Reply with a single integer and nothing else."
    people = {"crowd_004.jpg": 4, "crowd_009.jpg": 9, "crowd_096.jpg": 96, "crowd_164.jpg": 164}
    ids = list(people)
    groups = [[i] for i in ids] * 2 + [ids[:2], ids[2:]] + [ids]  # sequential, concurrent, by two, all four
    records, clock = [], 0.0
    for repeat in range(12):
        for level in ("low", "medium", "high", "ultra_high"):
            for k, group in enumerate(groups):
                digest = f"{repeat}/{level}/{k}"
                image = tk.gemini_image_tokens(1536, 1152, model=model, media_resolution=level)
                text = tk.text_tokens(prompt)
                thinking = engine.thinking(state, [people[i] for i in group], digest)
                outcome = Outcome(model, "42", [42] * len(group), image * len(group) + text, image, text, 2, thinking)
                first, rest = engine.timing(state, outcome, digest)
                usage = Usage(input_tokens=outcome.input_tokens, output_tokens=2, thinking_tokens=thinking)
                end = clock + first + rest
                record = Record(f"gemini/{model}/{level}", group, "gemini", model, 1, clock, end, 1, 1536, usage)
                record.repeat = repeat
                records.append(record_to_json(record))
                clock += first + rest
    bundle = {
        "schema_version": 1,
        "run_id": "seed-notebook-shaped",
        "simulated": False,
        "config": {"name": "seed-notebook", "dataset": {}, "task": {}, "matrix": []},
        "items": [{"id": i, "sha256": "0" * 64, "label": n} for i, n in people.items()],
        "cells": [],
        "records": records,
    }
    path.mkdir()
    (path / "bundle.json").write_text(json.dumps(bundle))
    return path


def test_the_seed_notebook_profile_is_derived_again_from_a_run_of_its_shape(tmp_path):
    run = _seed_shaped_bundle(tmp_path / "seed")
    data = json.loads((run / "bundle.json").read_text())
    for record in data["records"][:2]:  # another model with two requests: too few to fit, said so
        data["records"].append(record | {"model": "gemini-3.5-flash"})
    (run / "bundle.json").write_text(json.dumps(data))
    calibration = calibrate(load_runs([run]))
    assert calibration.left_out == [
        "gemini-3.5-flash: 2 timed requests answered at their first attempt with their tokens (fewer than 3) and no "
        "batch request answered"
    ]
    [fit] = calibration.fits
    want = load_profiles(SEED_PROFILE).models["gemini-3-pro-preview"].latency
    assert fit.model == "gemini-3-pro-preview" and fit.n == 12 * 4 * 11
    found = {
        "base_s": fit.base_s,
        "per_input_token_s": fit.per_input_token_s,
        "output_tokens_per_s": fit.output_tokens_per_s,
        "thinking_tokens": fit.thinking_tokens,
        "thinking_per_image": fit.thinking_per_image,
        "thinking_per_person": fit.thinking_per_person,
        "multi_image_thinking": fit.multi_image_thinking,
        "jitter": fit.jitter,
        "thinking_sd": fit.thinking_sd,
    }
    for key, value in found.items():
        assert _within(value, getattr(want, key)), (key, value, getattr(want, key))
    assert fit.r2 > 0.99
    assert PERSON_CAP == Latency().thinking_person_cap  # the curve the fit assumes is the emulator's


def test_bad_runs_are_refused_naming_the_run(tmp_path, capsys):
    rows = _rows(tmp_path / "data", n=4)
    failing = tmp_path / "failing.yaml"
    profile = {"faults": QUIET_FAULTS | {"http_500": 1.0}, "rate_limit": {"requests_per_minute": None}}
    failing.write_text(yaml.safe_dump({"models": {"gemini-3.5-flash": profile}}))
    config = _config(tmp_path, "failing", failing, rows, time_scale=0.0)
    assert main(["run", str(config), "--results", str(tmp_path / "r"), "--no-report", "--quiet"]) == 4  # items failed
    [run] = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    capsys.readouterr()

    out = tmp_path / "never.yaml"
    assert main(["calibrate", str(run), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{run}: run {run.name} has no request that succeeded at its first attempt" in err
    assert "(4 records, none judged)" in err and not out.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    data = json.loads((run / "bundle.json").read_text())
    data["records"] = []
    (empty / "bundle.json").write_text(json.dumps(data))
    assert main(["calibrate", str(empty), "-o", str(out)]) == 2
    assert f"{empty}: run {run.name} has no records to calibrate from" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "missing"), "-o", str(out)]) == 2
    with pytest.raises(InputError, match="no records"):
        calibrate(load_runs([empty]))


def test_faults_per_attempt_and_batch_turnaround_from_two_runs(tmp_path, capsys):
    """One run against a service failing 30% of attempts with 503 (retried, up to 4 attempts), one through the
    batch API with a 120 s turnaround: calibrated together, the profile has both, and names both runs."""
    rows = _rows(tmp_path / "data")
    profiles, runs = {}, []
    for name, faults, batch in (("flaky", {"http_503": 0.3}, {}), ("batched", {}, {"batch": {"turnaround_s": 120}})):
        profile = {"latency": {"base_s": 0.5}, "faults": QUIET_FAULTS | faults, **batch}
        profiles[name] = tmp_path / f"{name}.yaml"
        profiles[name].write_text(yaml.safe_dump({"seed": 5, "models": {"gemini-3.5-flash": profile}}))
    flaky = _config(tmp_path, "flaky", profiles["flaky"], rows, time_scale=0.0, repeats=5)
    settings = yaml.safe_load(flaky.read_text())
    settings["retry"] = {"max_attempts": 4, "base_delay_s": 0, "max_delay_s": 0, "timeout_s": 60}
    flaky.write_text(yaml.safe_dump(settings))
    batched = _config(tmp_path, "batched", profiles["batched"], rows, time_scale=0.05)
    settings = yaml.safe_load(batched.read_text())
    settings["matrix"][0]["strategies"] = [{"name": "provider-batch", "poll_initial_s": 0.01, "poll_max_s": 0.02}]
    settings["matrix"][0]["model_params"] = {}
    batched.write_text(yaml.safe_dump(settings))
    for config in (flaky, batched):
        results = tmp_path / config.stem
        assert main(["run", str(config), "--results", str(results), "--no-report", "--quiet"]) in (0, 4)
        runs += [p for p in results.iterdir() if p.is_dir()]
    capsys.readouterr()

    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", *map(str, runs), "-o", str(out)]) == 0
    text = out.read_text()
    assert all(f"run {run.name} (simulated): {run.resolve()}" in text for run in runs)
    records = bundle_mod.load(runs[0])["records"]
    attempts = sum(r["attempts"] for r in records)
    failed = attempts - sum(1 for r in records if r["error"] is None)
    assert len(records) == 200 and attempts > 250  # retried attempts: their errors are not in the records
    assert f"faults: 429 0.0% and 5xx {100 * failed / attempts:.1f}% of {attempts} attempts" in text
    calibrated = load_profiles(out)
    assert [r.run_id for r in calibrated.calibrated_from] == [run.name for run in runs]
    profile = calibrated.models["gemini-3.5-flash"]
    assert abs(profile.faults.http_503 - 0.3) <= 0.05 and profile.faults.http_500 == 0
    assert _within(profile.batch.turnaround_s, 120)
    # The run at time scale 0 answered at once (its times are the harness's): no latency is fitted from it.
    first = sum(1 for r in records if r["error"] is None and r["attempts"] == 1)
    assert f"{first} requests emulated at time scale 0 (instant): times not fitted" in text
    assert profile.latency.base_s == 0.5  # the emulator's default: not in the file


def test_fault_attribution_of_retried_attempts():
    """A record keeps its last attempt's error only: failed records count all their attempts as that error, and a
    successful record's retries are shared out as the recorded errors are."""
    from visionbench.run.calibrate import Fit, _faults

    def record(attempts, status=None, kind="transient"):
        error = None if status is None else {"kind": kind, "message": "x", "status": status}
        return {"attempts": attempts, "error": error, "batch": False}

    records = [record(1)] * 10 + [record(3)] * 2 + [record(2, 429, "rate_limited"), record(2, 500), record(2, 529)]
    fit = Fit("m", ["p"])
    _faults(fit, records)
    # 22 attempts; 6 recorded as failed (two each of 429, 500, 529) and 4 retried ones unrecorded: x (1 + 4/6)
    assert fit.attempts == 22
    assert fit.rate_limited == pytest.approx(2 * 10 / 6) and fit.rate_429 == pytest.approx(20 / 6 / 22)
    assert fit.by_status == pytest.approx({500: 10 / 3, 529: 10 / 3}) and fit.rate_5xx == pytest.approx(20 / 3 / 22)
    only_retries = Fit("m", ["p"])
    _faults(only_retries, [record(1)] * 10 + [record(3)] * 2)
    assert only_retries.by_status == {503: 4} and only_retries.rate_5xx == pytest.approx(4 / 16)
    assert "4 retried attempts failed with errors not recorded: counted as 503" in only_retries.notes
