"""A max_concurrency sweep expands into cells; the report draws it, and the limit auto found over time."""

import pytest
from PIL import Image
from test_adaptive_limit import experiment, run_it

from visionbench.report.charts import write_charts
from visionbench.report.concurrency_charts import sweep_series, time_weighted_limit
from visionbench.report.html import write_html_report


def test_the_time_weighted_limit_of_a_step_history():
    history = {"limits": [{"history": [[0.0, 4], [1.0, 8], [3.0, 2]]}]}
    assert time_weighted_limit(history, end_s=4.0) == (4 * 1 + 8 * 2 + 2 * 1) / 4
    assert time_weighted_limit({"limits": []}) is None


async def test_a_concurrency_sweep_is_cells_and_charts(tmp_path):
    strategies = [{"name": "concurrent", "max_concurrency": [1, 4, "auto"]}]
    data = await run_it(experiment(tmp_path, strategies, {"requests_per_minute": None}), tmp_path)
    ids = [c["id"] for c in data["cells"]]
    assert ids == [f"gemini/gemini-3.5-flash/concurrent@max_concurrency={c}" for c in (1, 4, "auto")]
    assert [c["varied"] for c in data["cells"]] == [{"max_concurrency": c} for c in (1, 4, "auto")]
    [(name, points)] = sweep_series(data).items()
    assert name == "gemini/gemini-3.5-flash/concurrent"
    assert [(c, kind) for c, kind, _ in points][:2] == [(1.0, "fixed"), (4.0, "fixed")]
    assert points[2][1] == "auto" and points[2][0] >= 4
    assert all(f["requests_per_s"] > 0 and f["p95_s"] >= f["p50_s"] > 0 for _, _, f in points)
    charts = write_charts(data, tmp_path / "charts")
    for key in ("concurrency_sweep", "concurrency"):
        with Image.open(charts[key]) as img:
            assert img.width > 500
    html = write_html_report(data, tmp_path / "report.html", charts).read_text()
    assert all(f'alt="{key} chart"' in html for key in charts)  # the gallery's thumbnails are <img> too


async def test_no_concurrency_charts_without_a_sweep_or_auto(tmp_path):
    data = await run_it(experiment(tmp_path, [{"name": "concurrent", "max_concurrency": 2}], {}), tmp_path)
    charts = write_charts(data, tmp_path / "charts")
    assert "concurrency_sweep" not in charts and "concurrency" not in charts


async def test_the_concurrency_charts_carry_the_simulated_mark_and_time_scale(tmp_path, monkeypatch):
    """Issue 26 item 4: every chart of a simulated run says so, with its time scale (here the profiles' own, 1, which
    the bundle records when the config sets none; then 0.05 as the config would set it) and what its times are."""
    import matplotlib.pyplot as plt

    from visionbench.report import charts, concurrency_charts

    drawn = {}

    def keep(fig, path, bundle=None):
        drawn[path.name] = [t.get_text() for t in fig.texts]
        plt.close(fig)
        return path

    monkeypatch.setattr(charts, "_save", keep)
    monkeypatch.setattr(concurrency_charts, "_save", keep)
    strategies = [{"name": "concurrent", "max_concurrency": [1, "auto"]}]
    data = await run_it(experiment(tmp_path, strategies, {"requests_per_minute": None}), tmp_path)
    write_charts(data, tmp_path / "charts")
    assert {"concurrency_sweep.png", "concurrency.png", "latency.png", "time_per_strategy.png"} <= set(drawn)
    for name, texts in drawn.items():
        assert "SIMULATED at time scale 1: times are the emulated services' seconds" in texts, name
    drawn.clear()
    data["config"]["emulator"]["time_scale"] = 0.05
    write_charts(data, tmp_path / "charts")
    for name, texts in drawn.items():
        assert (
            "SIMULATED at time scale 0.05: times are the emulated services' seconds (wall seconds / 0.05)" in texts
        ), name
    # and the sweep's figures are the modelled seconds: wall / 0.05
    [points] = concurrency_charts.sweep_series(data).values()
    fixed = next(f for _, kind, f in points if kind == "fixed")
    entry = next(e for e in data["cells"] if e["varied"]["max_concurrency"] == 1)
    assert fixed["p50_s"] == pytest.approx(entry["summary"]["latency_p50_s"] * 20)
    assert fixed["requests_per_s"] == pytest.approx(entry["summary"]["requests"] / entry["summary"]["wall_s"] / 20)
