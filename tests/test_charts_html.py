"""Charts (PNG), the Pareto front, and the self-contained HTML report, including a render in headless Chromium."""

import asyncio
import base64
import copy
import io
import re
import shutil
import subprocess
from pathlib import Path

import fakeplugin
import numpy as np
import pytest
import yaml
from conftest import ALL_STRATEGIES as STRATEGIES
from conftest import make_image_dir, write_config
from PIL import Image, ImageStat

from visionbench.report.charts import (
    cost_accuracy_chart,
    latency_chart,
    pareto_front,
    resolution_chart,
    resolution_series,
    time_chart,
    write_charts,
)
from visionbench.report.html import write_html_report
from visionbench.report.scores import bundle_scores
from visionbench.report.stats import cell_stats
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    """A real run of five strategies x 2 repeats, scripted provider: one wrong answer, one failing image, prices."""
    tmp = tmp_path_factory.mktemp("run")
    folder = make_image_dir(tmp / "images")
    answers = {f"img{i}.png": i for i in range(6)} | {"img2.png": 3}
    options = {"answers": answers, "failures": {"img5.png": ["bad_request"]}, "delay_s": 0.003}
    path = write_config(
        tmp, folder, STRATEGIES, options=options, repeats=2, pricing=[{"match": "m1", "input": 1.0, "output": 5.0}]
    )
    registry = collect(make_manager([fakeplugin]))
    data = bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results")))
    bundle_mod.validate(data)
    assert data["status"] == "incomplete" and len(data["cells"]) == 10  # one image fails in every cell
    return data


def check_png(path: Path, min_w: int = 600, min_h: int = 250) -> Image.Image:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(path)
    assert im.format == "PNG" and im.width >= min_w and im.height >= min_h
    assert max(ImageStat.Stat(im.convert("L")).var) > 100  # not a blank canvas
    return im


# --- Pareto front -------------------------------------------------------------------------------------------------


def test_pareto_front_excludes_dominated_points_and_orders_by_cost():
    points = [("a", 1.0, 0.5), ("b", 2.0, 0.9), ("c", 3.0, 0.8), ("d", 0.5, 0.4), ("e", 2.5, 0.9)]
    # c: b is cheaper and more accurate; e: b is cheaper and as accurate
    assert pareto_front(points) == ["d", "a", "b"]


def test_pareto_front_ties_and_equal_axes():
    assert pareto_front([("a", 1.0, 0.8), ("b", 1.0, 0.8)]) == ["a", "b"]  # identical: neither dominates
    assert pareto_front([("a", 1.0, 0.8), ("b", 1.0, 0.9)]) == ["b"]  # same cost, more accurate wins
    assert pareto_front([("a", 1.0, 0.8), ("b", 2.0, 0.8)]) == ["a"]  # same accuracy, cheaper wins
    assert pareto_front([]) == []


def test_pareto_front_unknown_and_zero_cost():
    points = [("unpriced", None, 1.0), ("local", 0.0, 0.7), ("api", 1.0, 0.9), ("unlabelled", 0.5, None)]
    assert pareto_front(points) == ["local", "api"]  # unknown cost or accuracy is never on the front
    assert pareto_front([("unpriced", None, 1.0)]) == []
    assert pareto_front([("local", 0.0, 0.9), ("api", 1.0, 0.9)]) == ["local"]


# --- charts -------------------------------------------------------------------------------------------------------


def test_write_charts_makes_three_readable_pngs(bundle, tmp_path):
    charts = write_charts(bundle, tmp_path / "charts")
    assert set(charts) == {"time", "cost_accuracy", "latency"}
    assert charts["time"].name == "time_per_strategy.png"  # the name `visionbench run` has always written
    for path in charts.values():
        assert path.parent == tmp_path / "charts"
        check_png(path)


def test_charts_cope_with_unknown_zero_cost_and_no_requests(bundle, tmp_path):
    crafted = copy.deepcopy(bundle)
    for entry in crafted["cells"]:
        if entry["strategy"] == "sequential":  # an unpriced model
            entry["summary"]["cost_usd"] = entry["summary"]["cost_per_1k_images_usd"] = None
        if entry["strategy"] == "concurrent":  # a local model
            entry["summary"]["cost_usd"] = entry["summary"]["cost_per_1k_images_usd"] = 0.0
        if entry["strategy"] == "adaptive":  # no labels
            entry["summary"]["exact_match"] = entry["summary"]["mae"] = None
    bundle_mod.validate(crafted)
    check_png(cost_accuracy_chart(crafted, tmp_path / "ca.png"))
    crafted["records"] = []  # nothing was ever sent
    check_png(latency_chart(crafted, tmp_path / "lat.png"), min_h=150)
    one = copy.deepcopy(bundle)
    one["cells"] = [c for c in one["cells"] if c["repeat"] == 0][:1]
    check_png(time_chart(one, tmp_path / "time.png"), min_h=150)


# --- HTML report --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def html_path(bundle, tmp_path_factory) -> Path:
    return write_html_report(bundle, tmp_path_factory.mktemp("html") / "report.html")


def test_html_is_self_contained(html_path):
    html = html_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<link" not in html.lower()
    # the one script is the item filter's own, inline, beside its JSON island: nothing loaded from anywhere
    scripts = re.findall(r"<script([^>]*)>", html, flags=re.I)
    assert scripts == [' type="application/json" id="vb-data"', ""]
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', html, flags=re.I)
    charts = [ref for ref in refs if ref.startswith("data:image/png;base64,")]
    thumbs = [ref for ref in refs if ref.startswith("data:image/jpeg;base64,")]
    assert len(charts) == 3 and len(thumbs) == 6 and len(refs) == 9  # three charts, one thumbnail per image
    assert not re.search(r"url\(", html)  # no CSS-loaded assets either
    for ref in charts:
        with Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.width >= 600
    for ref in thumbs:  # small: the page stays light
        assert len(ref) < 8000
        with Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1]))) as im:
            assert im.format == "JPEG" and max(im.size) <= 96


def test_html_shows_the_bundle_figures(bundle, html_path):
    html = html_path.read_text(encoding="utf-8")
    for text in (
        bundle["run_id"],
        "incomplete",
        "SIMULATED",
        "How many people?",
        "max_side=64",
        "3.11",
        "pydantic",
        "Adaptive: tier-1 filter",
        "75%",
        *(e["extra"]["batch"]["job_id"] for e in bundle["cells"] if e["strategy"] == "provider-batch"),
        "Provider batch: turnaround",
        "Answers per image",
    ):
        assert text in html, text
    for s in cell_stats(bundle):
        row = re.search(rf"<tr><td class=\"[^\"]*\">{re.escape(s.label)}</td>(.*?)</tr>", html).group(1)
        assert f"<td>{s.wall_s}</td>" in row  # mean ± 95% CI over the 2 repeats
        assert f"<td>{s.cost_usd.mean:.4f}</td>" in row
        assert f"<td>{s.summary['exact_match']:.0%}</td>" in row
        assert f"<td>{s.summary['latency_p50_s']:.3g}</td>" in row
        assert f"<td>{s.summary['input_tokens']:,.0f}</td>" in row
    # the wrong answer (img2: 3 for 2) is highlighted in every cell; the failed image shows as an error
    img2 = re.search(r"<tr><td class=\"l\">img2.png</td>(.*?)</tr>", html).group(1)
    assert img2.count('<td class="wrong">3</td>') == 5
    img5 = re.search(r"<tr><td class=\"l\">img5.png</td>(.*?)</tr>", html).group(1)
    assert 'class="err" title="bad_request' in img5


def test_html_escapes_text(bundle, tmp_path):
    crafted = copy.deepcopy(bundle)
    crafted["config"]["name"] = "<script>alert(1)</script>"
    crafted["config"]["task"]["prompt"] = 'Count <b>people</b> & "faces"'
    crafted["records"][0]["raw_text"] = "</script><script>alert(2)</script>"  # a reply in the filter's JSON island
    html = write_html_report(crafted, tmp_path / "r.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(2)" not in html and "\\u003c/script>\\u003cscript>alert(2)" in html
    assert "Count &lt;b&gt;people&lt;/b&gt; &amp; &quot;faces&quot;" in html


def test_html_never_shows_pythons_none(bundle, tmp_path):
    unset = copy.deepcopy(bundle)
    unset["config"]["preprocessing"]["max_side"] = None
    unset["config"]["dataset"]["label_field"] = None
    html = write_html_report(unset, tmp_path / "r.html").read_text()
    text = re.sub(r"<[^>]*>", " ", re.sub(r'src="data:[^"]*"', "", html))
    assert "None" not in text
    assert "<dt>preprocessing</dt><dd>max_side=full size, format=jpeg, quality=85</dd>" in html
    assert "<dt>labels</dt><dd>labels.json (each item&#x27;s whole entry)</dd>" in html
    unset["config"]["dataset"]["labels"] = None  # labels from a rows manifest's answer field
    assert (
        "<dt>labels</dt><dd>the rows&#x27; field &#x27;answer&#x27;</dd>"
        in write_html_report(unset, tmp_path / "r.html").read_text()
    )
    labelled = write_html_report(bundle, tmp_path / "r.html").read_text()
    assert "<dt>labels</dt><dd>labels.json (field person_count)</dd>" in labelled


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no chromium/chromium-browser on PATH: cannot render the HTML report")
def test_html_renders_in_headless_chromium(html_path, tmp_path):
    shot = tmp_path / "report.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2400",
        f"--screenshot={shot}",
        html_path.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shot.exists(), f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1400, 2400)
        rgb = im.convert("RGB")
    grey = rgb.convert("L")
    assert ImageStat.Stat(grey).var[0] > 200  # not blank

    def dark_share(box):  # share of non-white pixels in a region
        hist = grey.crop(box).histogram()
        return 1 - sum(hist[240:]) / sum(hist)

    assert dark_share((0, 0, 1400, 120)) > 0.01  # title and run banner
    assert dark_share((0, 120, 1400, 450)) > 0.03  # the per-cell table
    # the charts were decoded and drawn: the bars' blue (#4C72B0) appears below the tables
    lower = np.asarray(rgb.crop((0, 450, 1400, 2400)), dtype=int)
    blue = (np.abs(lower - np.array([76, 114, 176])) < 12).all(axis=2).sum()
    assert blue > 2000


def test_report_of_a_failed_run_with_no_cells(bundle, tmp_path):
    failed = copy.deepcopy(bundle) | {"cells": [], "records": [], "status": "failed", "error": "boom <here>"}
    bundle_mod.validate(failed)
    html = write_html_report(failed, tmp_path / "r.html").read_text()
    assert "failed" in html and "boom &lt;here&gt;" in html and html.count("data:image/png;base64,") == 3


# --- resolution sweeps --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_bundle(tmp_path_factory) -> dict:
    """A max_side sweep of two sizes on the scripted provider (which reports 100 tokens an image at any size)."""
    tmp = tmp_path_factory.mktemp("sweep")
    folder = make_image_dir(tmp / "images")
    options = {"answers": {f"img{i}.png": i for i in range(6)} | {"img0.png": 2}}
    path = write_config(tmp, folder, ["sequential"], options=options)
    config = yaml.safe_load(path.read_text())
    config["matrix"][0]["preprocessing"] = {"max_side": [32, 64]}
    path.write_text(yaml.safe_dump(config))
    registry = collect(make_manager([fakeplugin]))
    return bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results")))


def test_resolution_series_line_up_the_sizes(sweep_bundle):
    (name, points), *_ = resolution_series(sweep_bundle).items()
    assert name == "scripted/m1/sequential" and [side for side, _ in points] == [32, 64]
    assert points[0][1]["mae"] == pytest.approx(2 / 6) and points[0][1]["tokens_per_image"] == 100
    assert points[0][1]["cost_per_1k_images_usd"] == pytest.approx(1.0)  # the scripted provider's $0.001 a request


def test_chart_series_say_unset_settings_in_words(sweep_bundle):
    from visionbench.report.concurrency_charts import sweep_series

    swept = copy.deepcopy(sweep_bundle)
    for entry in swept["cells"]:
        entry["varied"]["thinking_level"] = None  # a sweep of thinking_level: [null, low], say
    assert list(resolution_series(swept)) == ["scripted/m1/sequential thinking_level=none"]
    for n, entry in enumerate(swept["cells"]):
        entry["varied"] = {"max_concurrency": 2 + n, "thinking_level": None}
    assert list(sweep_series(swept)) == ["scripted/m1/sequential thinking_level=none"]


def test_resolution_chart_is_drawn_for_a_sweep_and_not_without_one(sweep_bundle, bundle, tmp_path):
    check_png(resolution_chart(sweep_bundle, tmp_path / "res.png"), min_w=800)
    assert resolution_chart(bundle, tmp_path / "none.png") is None
    assert "resolution" in write_charts(sweep_bundle, tmp_path) and "resolution" not in write_charts(bundle, tmp_path)


def test_cost_chart_of_a_counting_task_plots_its_primary_scorer_or_mae_without_scores(
    sweep_bundle, tmp_path, monkeypatch
):
    import matplotlib.axes

    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", lambda self, text, **kw: labels.append(text))
    check_png(cost_accuracy_chart(sweep_bundle, tmp_path / "c.png"))
    assert labels == ["numeric: mean score (% of labelled images), higher is better"]
    old = copy.deepcopy(sweep_bundle)  # a bundle from before scorers
    for entry in old["cells"]:
        del entry["summary"]["scores"]
    labels.clear()
    check_png(cost_accuracy_chart(old, tmp_path / "old.png"))
    assert labels == ["mean absolute error (MAE), lower is better"]


def test_the_terminal_answers_table_shows_the_first_images_and_says_so(bundle):
    from visionbench.report.terminal import answers_sheet

    n = len(bundle["items"])
    whole = answers_sheet(bundle)
    assert len(whole.rows) == n and not any("report.html has them all" in note for note in whole.notes)
    short = answers_sheet(bundle, max_rows=2)
    assert len(short.rows) == 2 and f"the first 2 of {n:,} images; report.html has them all" in short.notes


def test_a_big_runs_html_answers_table_shows_the_first_images_and_says_where_the_rest_are(
    bundle, tmp_path, monkeypatch
):
    from visionbench.report.terminal import answers_sheet

    n = len(bundle["items"])
    monkeypatch.setattr("visionbench.report.html.HTML_ANSWER_ROWS", 3)
    monkeypatch.setattr("visionbench.report.terminal.HTML_ANSWER_ROWS", 3)
    html = write_html_report(bundle, tmp_path / "r.html").read_text()
    answers = html.split("<h2>Answers per image</h2>")[1].split("</table>")[0]
    assert answers.count("<tr>") == 1 + 3  # the head and three images
    assert f"The first 3 of {n:,} images; <code>visionbench report RUN --format json</code> has every image." in html
    assert f"the first 2 of {n:,} images; --format json has them all" in answers_sheet(bundle, max_rows=2).notes


# --- charts for reading: SIMULATED mark, batch apart, fitted axes ----------------------------------------------------


@pytest.fixture
def figures(monkeypatch):
    """The figures the charts draw, kept open instead of saved."""
    import visionbench.report.charts as charts

    drawn = {}

    def keep(fig, path, bundle=None):
        drawn[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(charts, "_save", keep)
    yield drawn
    import matplotlib.pyplot as plt

    plt.close("all")


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def test_every_chart_of_a_simulated_run_says_so_with_its_time_scale(bundle, sweep_bundle, figures, tmp_path):
    scaled = copy.deepcopy(sweep_bundle) | {"simulated": True}
    scaled["config"]["emulator"] = {"time_scale": 0.05}
    write_charts(scaled, tmp_path)
    assert set(figures) == {"time_per_strategy.png", "cost_accuracy.png", "latency.png", "resolution.png"}
    for name, fig in figures.items():
        assert any(t.startswith("SIMULATED") and "time scale 0.05" in t for t in _texts(fig)), name
    figures.clear()
    real = copy.deepcopy(bundle) | {"simulated": False}
    write_charts(real, tmp_path)
    assert not any("SIMULATED" in t for fig in figures.values() for t in _texts(fig))


def test_batch_turnaround_has_its_own_panel_and_axes_fit_the_data(bundle, figures, tmp_path):
    write_charts(bundle, tmp_path)
    fig = figures["time_per_strategy.png"]
    sync, batch = fig.axes
    assert [t.get_text() for t in batch.get_yticklabels()] == ["provider-batch"]
    assert "provider-batch" not in [t.get_text() for t in sync.get_yticklabels()]
    sync_top = max(s.wall_s.mean + (s.wall_s.ci95 or 0) for s in cell_stats(bundle) if s.strategy != "provider-batch")
    assert sync.get_xlim()[1] <= sync_top * 1.25  # not stretched to the batch's turnaround
    cost = figures["cost_accuracy.png"].axes[0]
    found = bundle_scores(bundle)  # the primary scorer's mean, in %
    ys = [100 * m for c in found.cells.values() if (m := c.mean(str(found.primary))) is not None]
    low, high = cost.get_ylim()
    assert high <= max(ys) + max(0.15 * (max(ys) - min(ys)), 0.12 * max(ys), 5) + 1e-9  # fitted to the data
    legend = cost.get_legend()
    if legend is not None:  # below the axes, not on the points
        fig = figures["cost_accuracy.png"]
        fig.canvas.draw()
        assert legend.get_window_extent().y1 <= cost.get_window_extent().y0


def test_labels_of_points_that_nearly_coincide_are_stacked_into_one():
    from visionbench.report.charts import _merge_close

    spots = {
        (0.0476, 0.2, False): ["a"],
        (0.0477, 0.2, False): ["b"],
        (5.0, 0.2, False): ["c"],
        (0.0476, 0.5, False): ["d"],
    }
    merged = _merge_close(spots, log=True)
    assert merged == {(0.0476, 0.2, False): ["a", "b"], (5.0, 0.2, False): ["c"], (0.0476, 0.5, False): ["d"]}
    assert len(_merge_close({(0.0476, 0.2, True): ["x"], (0.0477, 0.2, False): ["y"]}, log=True)) == 2


def test_the_cells_legend_says_unset_settings_in_words():
    from visionbench.report.terminal import legend_sheet

    sheet = legend_sheet(
        {
            "gemini/gemini-3.5-flash/sequential@full-size": {"max_side": None, "thinking_level": None},
            "anthropic/claude-haiku-4-5/sequential@384px": {"max_side": 384, "thinking_level": "low"},
        }
    )
    assert [row[2] for row in sheet.rows] == [
        "max_side=full size, thinking_level=none",
        "max_side=384, thinking_level=low",
    ]


# --- charts of many cells, one cell, failed cells (issue 27; issue 26: failed cells are named, never drawn) ---------


def _many_cells(bundle, n: int, failed: tuple[int, ...] = ()) -> dict:
    """``bundle``'s first cell (repeat 0) as ``n`` cells ``fake/m000/concurrent``...: cell i has i % 5 more wrong
    answers (of img0, img1, img3, img4, off by one), and the cells in ``failed`` answered nothing."""
    out = copy.deepcopy(bundle)
    first = next(c for c in bundle["cells"] if c["repeat"] == 0)
    records = [r for r in bundle["records"] if r["cell"] == first["id"] and r["repeat"] == 0]
    cells, new_records = [], []
    for i in range(n):
        cell_id = f"fake/m{i:03d}/concurrent"
        entry = copy.deepcopy(first) | {"id": cell_id, "model": f"m{i:03d}", "strategy": "concurrent"}
        for item_id in ["img0.png", "img1.png", "img3.png", "img4.png"][: i % 5]:
            entry["answers"][item_id]["value"] += 1
        if i in failed:
            for answer in entry["answers"].values():
                answer.update(value=None, error="fake HTTP 503: overloaded")
        cells.append(entry)
        for r in records:
            rec = copy.deepcopy(r) | {"cell": cell_id, "model": f"m{i:03d}"}
            rec["answers"] = [entry["answers"][a["item_id"]] for a in rec["answers"]]
            if i in failed:
                rec["error"] = {"kind": "server_error", "message": "fake HTTP 503: overloaded", "status": 503}
            new_records.append(rec)
    out["cells"], out["records"] = cells, new_records
    return out


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def test_a_500_cell_chart_draws_the_30_most_accurate_and_says_where_the_rest_are(bundle, figures, tmp_path):
    from visionbench.report.chart_cells import MAX_CHART_CELLS

    big = _many_cells(bundle, 500, failed=(0, 7))
    write_charts(big, tmp_path)
    best = [f"m{i:03d}/concurrent" for i in range(5, 500, 5)][:MAX_CHART_CELLS]  # all right but img2; m000 failed
    for name in ("time_per_strategy.png", "latency.png"):
        ax = figures[name].axes[0]
        assert _labels(ax) == best, name
        label = ax.get_xlabel().replace("\n", " ")
        assert "30 of 498 answering cells drawn: the most accurate by" in label, name
        assert "the other 468 are in the tables" in label and "not drawn: m000/concurrent, m007/concurrent" in label
        assert figures[name].get_figheight() * 110 < 2100  # 880 x 30,448 px before
    cost = figures["cost_accuracy.png"]
    dots = sum(len(c.get_offsets()) for c in cost.axes[0].collections if list(c.get_sizes()) == [12])
    lines = [line for t in cost.axes[0].texts for line in t.get_text().split("\n")]
    more = sum(int(m[1]) for line in lines if (m := re.match(r"and (\d+) more cells here", line)))
    assert dots + len(lines) - (more > 0) + more == 498  # every answering cell a dot or labelled, the failed none
    assert dots >= 390 and len(lines) <= 10 + 4 * 3  # not 498 labels: the 10 best and the front, 4 to a spot
    assert any("grey dots: the others" in t.get_text() for t in cost.texts)


def test_charts_of_500_cells_are_readable_pngs_and_one_cell_draws_whole(bundle, tmp_path):
    charts = write_charts(_many_cells(bundle, 500), tmp_path / "big")
    for key in ("time", "latency"):
        with Image.open(charts[key]) as im:
            assert im.width == 880 and 1500 < im.height < 2100, (key, im.size)
    one = write_charts(_many_cells(bundle, 1), tmp_path / "one")
    for key in ("time", "latency"):
        im = check_png(one[key], min_h=200)
        assert im.height < 400


def test_failed_cells_are_named_never_drawn_and_a_run_that_answered_nothing_says_so(bundle, figures, tmp_path):
    write_charts(_many_cells(bundle, 3, failed=(1,)), tmp_path)
    ax = figures["time_per_strategy.png"].axes[0]
    drawn = ["m000/concurrent", "m002/concurrent"]
    assert _labels(ax) == drawn and "failed, nothing answered, not drawn: m001/concurrent" in ax.get_xlabel()
    assert _labels(figures["latency.png"].axes[0]) == drawn
    figures.clear()
    write_charts(_many_cells(bundle, 3, failed=(0, 1, 2)), tmp_path)
    for name in ("time_per_strategy.png", "latency.png", "cost_accuracy.png"):
        ax = figures[name].axes[0]
        assert not ax.patches and not any(len(c.get_offsets()) for c in ax.collections), name  # no bar, box, point
        assert "no cell answered anything" in [t.get_text() for t in ax.texts], name
    assert "not drawn: m000/concurrent, m001/concurrent, m002/concurrent" in figures["time_per_strategy.png"].axes[
        0
    ].get_xlabel().replace("\n", " ")


def test_a_500_cell_report_html_stays_under_5_mb_with_its_tables_and_gallery_cut_to_read(bundle, tmp_path):
    """14.8 MB before: 880 x 30,000 px charts, 500 answer columns, 500 lines a gallery card."""
    big = _many_cells(bundle, 500, failed=(0,))
    charts = write_charts(big, tmp_path)
    html = write_html_report(big, tmp_path / "report.html", charts).read_text()
    assert len(html.encode()) < 5 * 2**20
    answers = html[html.index("<h2>Answers per image</h2>") : html.index("<h2>Images as sent</h2>")]
    head = re.search(r"<thead>(.*?)</thead>", answers, re.S).group(1)
    assert head.count("<th") == 2 + 30 + 2  # image, label, the charts' 30 cells, most common, agreement
    assert "Columns: the 30 cells the charts draw (30 of 499 answering cells drawn" in answers
    assert "<details" in answers and "<summary>Cells: the short names of 500 cells</summary>" in answers  # folded
    gallery = html[html.index('<div class="gallery">') :]
    cards = re.findall(r'<div class="card"[^>]*>.*?</ul></div>', gallery, re.S)
    assert len(cards) == 6
    for card in cards:  # each distinct answer once, with the cells that gave it: 500 in all
        counts = [int(n) for n in re.findall(r": (\d+) cells? \(", card)]
        assert sum(counts) == 500 and len(counts) <= 4, card[:300]
    img0 = next(card for card in cards if "<h3>img0.png" in card)
    assert '<li class="err">error: fake HTTP 503: 1 cell (m000)<span class="msg">' in img0
    assert (
        '<ul><li class="wrong"><b>1</b> &#10007;: 400 cells (m001, m002, m003, m004, m006, m007 and 394 more)' in img0
    )
    assert (
        "<li><b>0</b>: 99 cells (m005, m010, m015, m020, m025, m030 and 93 more)</li>" in img0
    )  # the most given first
