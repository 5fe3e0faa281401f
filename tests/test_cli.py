"""The command line end to end: the offline quickstart, validate, report, and clear errors with exit codes."""

import asyncio
import gc
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from visionbench.cli import main
from visionbench.results import bundle as bundle_mod
from visionbench.run.estimate import estimate
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_runs_offline_with_all_four_strategies(tmp_path, capsys):
    code = main(["run", str(QUICKSTART), "--results", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    [run_dir] = [p for p in tmp_path.iterdir() if p.name != "cache"]
    data = bundle_mod.load(run_dir)
    bundle_mod.validate(data)
    assert data["status"] == "complete" and data["simulated"] is False
    assert [c["strategy"] for c in data["cells"]] == ["sequential", "concurrent", "single-prompt", "adaptive"]
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0 and cell["summary"]["cost_usd"] == 0.0
        assert cell["summary"]["mae"] is not None and cell["summary"]["mae"] <= 0.5
    assert data["environment"]["packages"]["google-genai"] == "3.3.0"
    assert data["environment"]["providers"]["local-faces"]["model"] == "centerface"
    assert all(len(item["sha256"]) == 64 for item in data["items"])
    assert not list(run_dir.glob("*.png"))  # run draws no charts unless asked (--charts): report draws them
    for text in (
        "Answers per image",
        "group_6.jpg",
        "single-prompt",
        "adaptive",
        "precision",
        str(run_dir / "bundle.json"),
    ):
        assert text in out
    html = (run_dir / "report.html").read_text()
    assert "group_6.jpg" in html and "data:image/png;base64," not in html
    assert f"<code>visionbench report {run_dir}</code> draws them" in html
    assert f"charts: not drawn (--charts, or visionbench report {run_dir})" in out
    # report re-reads the bundle and draws the charts; compare lines a run up against another (here: itself)
    assert main(["report", str(run_dir)]) == 0
    assert "Per cell" in capsys.readouterr().out
    chart = run_dir / "time_per_strategy.png"
    with Image.open(chart) as im:
        assert im.format == "PNG" and im.width > 400
    assert (run_dir / "cost_accuracy.png").exists() and (run_dir / "latency.png").exists()
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    assert main(["compare", str(run_dir), str(run_dir / "bundle.json"), "--html", str(tmp_path / "cmp.html")]) == 0
    out = capsys.readouterr().out
    assert "single-prompt" in out and (tmp_path / "cmp.html").read_text().startswith("<!DOCTYPE html>")


def test_run_no_report_writes_only_the_bundle_and_charts_draws_them(tmp_path, capsys):
    config = _faces_config(tmp_path)
    common = ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(["run", str(config), "--results", str(tmp_path / "bare"), "--no-report", *common]) == 0
    out = capsys.readouterr().out
    [run_dir] = (tmp_path / "bare").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["bundle.json"]
    assert "Per cell" in out and f"visionbench report {run_dir} writes it" in out
    assert main(["run", str(config), "--results", str(tmp_path / "all"), "--charts", *common]) == 0
    [run_dir] = (tmp_path / "all").iterdir()
    assert {"bundle.json", "report.html", "time_per_strategy.png", "latency.png"} <= {p.name for p in run_dir.iterdir()}
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    with pytest.raises(SystemExit) as exit_:  # both at once: a usage error naming them, nothing run
        main(["run", str(config), "--results", str(tmp_path / "both"), "--charts", "--no-report", *common])
    assert exit_.value.code == 2 and "--no-report: not allowed with argument --charts" in capsys.readouterr().err
    assert not (tmp_path / "both").exists()


def _faces_config(tmp_path: Path) -> Path:
    """Two of the sample images, one sequential cell on the offline local-faces provider."""
    text = QUICKSTART.read_text().replace("../framework", str(ROOT / "framework"))
    config = yaml.safe_load(text)
    config["dataset"]["include"] = ["group_6.jpg", "astronaut.jpg"]
    config["matrix"][0]["strategies"] = ["sequential"]
    path = tmp_path / "faces.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_validate_ok_and_errors(tmp_path, capsys):
    assert main(["validate", str(QUICKSTART)]) == 0
    assert "10 images, 4 cells" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        QUICKSTART.read_text().replace("- sequential", "- sequentail").replace("../framework", str(ROOT / "framework"))
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "sequentail" in err and "single-prompt" in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_plugin_listing(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("sequential", "concurrent", "single-prompt", "adaptive"))
    assert main(["providers"]) == 0
    assert "local-faces" in capsys.readouterr().out


def _emulated_config(tmp_path, old: str, new: str) -> Path:
    path = tmp_path / "emu.yaml"
    text = (ROOT / "configs" / "quickstart-emulated.yaml").read_text().replace("../framework", str(ROOT / "framework"))
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def test_shipped_configs_use_current_models(capsys):
    for name in ("quickstart-emulated", "seed-crowd-count", "seed-crowd-count-emulated"):
        assert main(["validate", str(ROOT / "configs" / f"{name}.yaml")]) == 0, name
        assert "warning" not in capsys.readouterr().err, name


def test_a_model_param_typo_exits_2_at_validate_and_plan(tmp_path, capsys):
    path = _emulated_config(tmp_path, "thinking_level: low", "thinking_levl: low")
    for command in ("validate", "plan"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert "model_params" in err and "'thinking_levl' (did you mean 'thinking_level'?)" in err
        assert "For further information" not in err


def test_a_retired_model_warns_once_per_model(tmp_path, capsys):
    path = _emulated_config(tmp_path, "models: [gemini-3.5-flash]", "models: [gemini-2.5-flash]")
    path.write_text(path.read_text().replace("thinking_level: low", "thinking_budget: 0"))
    assert main(["validate", str(path)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert lines == [
        "warning: model gemini-2.5-flash (gemini): retired on 2026-12-01; try gemini-3.5-flash",
        "warning: model gemini-2.5-flash (gemini): the emulator answers 404 for it, as the service would",
    ]


def test_emulated_seed_runs_on_its_own_profiles_and_shows_thinking(tmp_path, capsys):
    config = ROOT / "configs" / "seed-crowd-count-emulated.yaml"
    assert main(["run", str(config), "--results", str(tmp_path), "--no-cache", "--quiet", "--wide"]) == 0
    out = capsys.readouterr().out
    [run_dir] = list(tmp_path.iterdir())
    data = bundle_mod.load(run_dir)
    gemini = [r for r in data["records"] if r["cell"].startswith("gemini/gemini-3.5-flash/")]
    # gemini-3.5-flash's own profile thinks 300 tokens a request, with seeded noise (the "*" fallback does not think)
    assert gemini and all(200 < r["usage"]["thinking_tokens"] < 400 for r in gemini)
    sequential = sum(r["usage"]["thinking_tokens"] for r in gemini if r["cell"].endswith("/sequential"))
    assert "tok think" in out and str(sequential) in out
    assert all(c["summary"]["cost_usd"] > 0 for c in data["cells"])
    used = data["pricing"]["used"]
    assert used["gemini/gemini-3.5-flash"]["batch"] == "standard x 0.5"  # no batch price in genai-prices
    assert data["pricing"]["version"].startswith("genai-prices 0.2.")
    html = (run_dir / "report.html").read_text()
    assert "tok thinking" in html and f"{sequential:,}" in html


def test_dataset_option_replaces_the_configs_images(tmp_path, image_dir, capsys):
    for config in ("adaptive-filter-emulated", "seed-crowd-count-emulated"):  # the second's `include` is dropped
        assert main(["validate", str(ROOT / "configs" / f"{config}.yaml"), "--dataset", str(image_dir)]) == 0
        assert "OK: 6 images" in capsys.readouterr().out
    seed = ROOT / "configs" / "seed-crowd-count-emulated.yaml"
    assert main(["plan", str(seed), "--dataset", str(image_dir)]) == 0
    assert "Plan (estimates" in capsys.readouterr().out
    estimates = asyncio.run(estimate(load_plan(seed, default_registry(), dataset=image_dir)))
    assert {e.requests for e in estimates if e.cell_id.endswith("/sequential")} == {6}
    code = main(["run", str(QUICKSTART), "--dataset", str(image_dir), "--results", str(tmp_path / "r"), "--quiet"])
    assert code == 0
    [run_dir] = list((tmp_path / "r").iterdir())
    data = bundle_mod.load(run_dir)
    assert data["config"]["dataset"]["path"] == str(image_dir)  # absolute, so a resume finds the same images
    assert sorted(item["id"] for item in data["items"]) == [f"img{i}.png" for i in range(6)]


def test_a_bad_dataset_option_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    for command in ("validate", "plan", "run"):
        assert main([command, str(QUICKSTART), "--dataset", str(missing)]) == 2
        err = capsys.readouterr().err
        assert f"--dataset {missing}" in err and "does not exist" in err
    assert main(["validate", str(QUICKSTART), "--dataset", str(tmp_path)]) == 2  # a folder without its labels file
    assert f"{tmp_path / 'labels.json'}" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path), "--dataset", str(tmp_path)]) == 2
    assert "--dataset goes with a CONFIG" in capsys.readouterr().err


def test_only_the_process_own_command_freezes_its_objects_before_exit(monkeypatch, capsys):
    """``main()`` (the ``visionbench`` script) freezes what it made, for a cheap interpreter shutdown; ``main(argv)``,
    called by a process that goes on, leaves the garbage collector as it was."""
    assert gc.get_freeze_count() == 0
    assert main(["strategies"]) == 0
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(sys, "argv", ["visionbench", "strategies"])
    try:
        assert main() == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert "concurrent" in capsys.readouterr().out


def _big_run(tmp_path: Path, image_dir: Path, repeats: int) -> Path:
    """Six images x ``repeats`` requests on the emulator at time_scale 0 (answers at once, no faults)."""
    profile = {"faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "malformed_body": 0}}
    profiles = tmp_path / "quiet.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": profile, "models": {"*": {}}}))
    config = {
        "name": "big",
        "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
        "task": {"prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": 64},
        "emulator": {"profiles": str(profiles)},
        "repeats": repeats,
        "matrix": [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": [{"name": "concurrent"}]}],
    }
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class _Terminal:
    """stdin as a terminal where the user types ``answer``."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return self.answer


@pytest.mark.slow
def test_a_run_of_more_than_1000_requests_shows_its_totals_and_asks_first(tmp_path, image_dir, capsys, monkeypatch):
    path = _big_run(tmp_path, image_dir, repeats=167)  # 6 x 167 = 1,002 requests
    results = tmp_path / "results"
    args = ["run", str(path), "--results", str(results), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    # not a terminal (a script, CI): refused before anything is sent, saying what to pass
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Plan summary" in err and "1,002" in err  # the totals first
    assert "error: this run sends 1,002 requests (6 images, 1 cells), more than 1,000: give --yes to run it" in err
    assert not results.exists()
    # on a terminal: asked; anything but yes sends nothing
    monkeypatch.setattr(sys, "stdin", _Terminal("\n"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "this run sends 1,002 requests (6 images, 1 cells). Run it? [y/N]" in err
    assert "error: not confirmed: 1,002 requests (6 images, 1 cells) not sent; nothing was run" in err
    assert not results.exists()
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert main([*args, "--no-report", "--format", "csv"]) == 0
    [run_dir] = results.iterdir()
    assert sum(1 for r in bundle_mod.load(run_dir)["records"] if r["attempts"]) == 1002
    # --yes: not asked (stdin is pytest's again: no terminal), on to the run's next check (a results "folder" that
    # is a file, so that nothing more is sent)
    monkeypatch.undo()
    capsys.readouterr()
    (tmp_path / "a-file").write_text("")
    assert main([*args[:2], "--results", str(tmp_path / "a-file"), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "Run it?" not in err and "Plan summary" not in err and "a-file" in err


def test_a_run_of_1000_requests_or_fewer_is_not_asked_about(tmp_path, image_dir, capsys):
    path = _big_run(tmp_path, image_dir, repeats=1)
    args = ["run", str(path), "--results", str(tmp_path / "r"), "--no-report", "--quiet", "--format", "csv"]
    assert main(args) == 0
    assert "Plan summary" not in capsys.readouterr().err
