"""``run --replay RUN``: requests that match an earlier run's are answered from it, not sent (issue 28, part 1)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import capture_emulators
from rich.console import Console

from visionbench.errors import ConfigError
from visionbench.report.terminal import cells_sheet, print_report, status_line
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry
from visionbench.run.replay import Replay
from visionbench.run.runner import run

ROOT = Path(__file__).resolve().parents[1]


def quickstart(tmp_path: Path, *, drop_batch: bool = False, prompt: str | None = None) -> Path:
    """The quickstart-emulated config at time scale 0 (instant), its dataset where it is, against an emulator that
    draws no faults (so every request of the first run is answered, and a replay has every one to answer)."""
    config = yaml.safe_load((ROOT / "configs" / "quickstart-emulated.yaml").read_text())
    config["dataset"]["path"] = str(ROOT / "framework" / "sample_images")
    profiles = yaml.safe_load((ROOT / "framework" / "emulator" / "profiles" / "default.yaml").read_text())
    for profile in [profiles.get("defaults", {}), *profiles.get("models", {}).values()]:
        profile.pop("faults", None)
    profiles.setdefault("defaults", {})["faults"] = {"http_500": 0, "http_503": 0, "drop_connection": 0}
    (tmp_path / "quiet.yaml").write_text(yaml.safe_dump(profiles))
    config["emulator"] = {"time_scale": 0, "profiles": str(tmp_path / "quiet.yaml")}
    config["cache_dir"] = str(tmp_path / "c")
    if drop_batch:
        for entry in config["matrix"]:
            entry["strategies"] = [s for s in entry["strategies"] if not _is_batch(s)]
    if prompt:
        config["task"]["prompt"] = prompt
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _is_batch(strategy: Any) -> bool:
    return (strategy if isinstance(strategy, str) else strategy["name"]) == "provider-batch"


async def run_counted(path: Path, tmp_path: Path, monkeypatch, name: str, replay: Path | None = None):
    """The run's bundle, how many requests its emulator was sent (each call and each batch job's requests, all
    models) and its folder."""
    started = capture_emulators(monkeypatch)
    plan = load_plan(path, default_registry())
    out = await run(plan, results_dir=tmp_path / name, cache_dir=tmp_path / "c", replay=replay)
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    [emu] = started
    return data, sum(stats.requests + stats.batch_requests for stats in emu.stats.values()), out.parent


@pytest.mark.slow
async def test_a_replayed_rerun_of_the_quickstart_sends_nothing_and_says_so(tmp_path, monkeypatch):
    path = quickstart(tmp_path)
    first, sent, first_dir = await run_counted(path, tmp_path, monkeypatch, "first")
    assert sent > 0
    failed = [r for r in first["records"] if r["error"] is not None]
    assert first["status"] == "complete" and not failed
    again, resent, _ = await run_counted(path, tmp_path, monkeypatch, "again", replay=first_dir)
    assert resent == 0, (sent, resent)  # every request answered from the first run: the emulator was sent nothing
    replayed = [r for r in again["records"] if r["replayed"] is not None]
    assert replayed and all(r["replayed"] == first["run_id"] and r["attempts"] == 0 for r in replayed)
    answered = [r for r in first["records"] if r["error"] is None]
    assert len(replayed) == len(answered)
    for a, b in zip(first["cells"], again["cells"]):
        assert a["answers"] == b["answers"]  # the same replies, read the same way
        assert b["summary"]["cost_usd"] == pytest.approx(a["summary"]["cost_usd"])  # what the cell costs
        assert b["summary"]["latency_p50_s"] is None and b["summary"]["images_per_s"] is None
    line = status_line(again)
    n = len(replayed)
    assert f"{n:,} of {n:,} requests replayed from {first['run_id']}" in line and "not spent again" in line
    out = io.StringIO()
    print_report(again, Console(file=out, width=120))
    assert "replayed" in out.getvalue()
    # a replayed cell's time is not its own: no wall time in the table, not drawn in the time chart
    rows = cells_sheet(again).plain_rows()
    assert all(row[0].endswith("replayed)") and row[1] == "-" for row in rows), rows
    # A changed prompt matches nothing: every request is sent.
    changed = quickstart(tmp_path, prompt="How many people can you see? Answer with a single integer.")
    fresh, sent_again, _ = await run_counted(changed, tmp_path, monkeypatch, "changed", replay=first_dir)
    assert sent_again >= len(answered) and not any(r["replayed"] for r in fresh["records"])


def test_simulated_answers_never_stand_in_for_real_ones():
    replay = Replay("r1", "/x", simulated=True)
    replay.check(True, "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: replay: run r1 has an emulator's \(simulated\) answers"):
        replay.check(False, "c.yaml")


def test_a_bundle_without_request_keys_cannot_be_replayed():
    from visionbench.results.model import Bundle

    old = Bundle({"run_id": "old", "simulated": False, "records": [{"cell": "c", "error": None, "raw_text": "1"}]})
    with pytest.raises(ConfigError, match="old.*no request keys"):
        Replay.of(old, "runs/old")
