"""The command line end to end: the offline quickstart, validate, report, and clear errors with exit codes."""

from pathlib import Path

from PIL import Image

from visionbench import bundle as bundle_mod
from visionbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


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
    chart = run_dir / "time_per_strategy.png"
    with Image.open(chart) as im:
        assert im.format == "PNG" and im.width > 400
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
    assert "data:image/png;base64," in html and "group_6.jpg" in html
    assert (run_dir / "cost_accuracy.png").exists() and (run_dir / "latency.png").exists()
    # report re-reads the bundle; compare lines a run up against another (here: itself)
    assert main(["report", str(run_dir)]) == 0
    assert "Per cell" in capsys.readouterr().out
    assert main(["compare", str(run_dir), str(run_dir / "bundle.json"), "--html", str(tmp_path / "cmp.html")]) == 0
    out = capsys.readouterr().out
    assert "single-prompt" in out and (tmp_path / "cmp.html").read_text().startswith("<!DOCTYPE html>")


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
