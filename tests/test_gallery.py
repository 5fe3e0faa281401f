"""The report's image gallery (the bytes that were sent, per size; answers; errors visible; most disputed first) and
the page's layout at 1280 px in headless Chromium: nothing overflows the page, no header overlaps its neighbour,
no table cell is cut."""

import asyncio
import base64
import io
import json
import re
import shutil
import subprocess

import fakeplugin
import pytest
import yaml
from conftest import ALL_STRATEGIES as STRATEGIES
from conftest import make_image_dir, write_config
from PIL import Image

from visionbench.report.gallery import gallery_html
from visionbench.report.html import write_html_report
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two sizes (32 and 64 px) x five strategies x two models = 20 cells, through a cache; img3 is answered
    differently by every size, img5 fails with a message."""
    tmp = tmp_path_factory.mktemp("gallery")
    folder = make_image_dir(tmp / "images")
    options = {"answers": {f"img{i}.png": i for i in range(6)}, "failures": {"img5.png": ["bad_request"]}}
    path = write_config(tmp, folder, STRATEGIES, options=options)
    config = yaml.safe_load(path.read_text())
    config["matrix"][0]["models"] = ["m1", "m2"]
    config["matrix"][0]["preprocessing"] = {"max_side": [32, 64]}
    path.write_text(yaml.safe_dump(config))
    registry = collect(make_manager([fakeplugin]))
    cache = tmp / "cache"
    data = bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp / "results", cache_dir=cache)))
    for entry in data["cells"]:  # a disputed image: the cells answer img3 in three different ways
        if entry["id"].endswith("@32px"):
            entry["answers"]["img3.png"]["value"] = 9 if "/m1/" in entry["id"] else 7
    return data, cache, folder


def _thumbs(html: str) -> list[tuple[Image.Image, str]]:
    found = re.findall(r'src="data:image/jpeg;base64,([^"]+)"><figcaption>([^<]*)', html)
    return [(Image.open(io.BytesIO(base64.b64decode(b))), caption) for b, caption in found]


def test_thumbnails_are_the_bytes_sent_at_each_size(sweep):
    data, cache, _ = sweep
    html = gallery_html(data, cache)
    thumbs = _thumbs(html)
    assert len(thumbs) == 12  # six images, two sizes each
    card = next(c for c in re.split(r'<div class="card"[^>]*>', html) if c.startswith("<h3>img0.png"))
    img0 = [(im.size, caption) for im, caption in _thumbs(card)]
    assert [size for size, _ in img0] == [(32, 24), (64, 48)]  # the thumbnail is the sent image, not the original
    assert "m1/seq@32px" in img0[0][1] and "m2/batch@64px" in img0[1][1]


def test_without_the_cache_the_images_are_preprocessed_again(sweep, tmp_path):
    data, _, _ = sweep
    again = _thumbs(gallery_html(data, None))
    assert [im.size for im, _ in again] == [im.size for im, _ in _thumbs(gallery_html(data, sweep[1]))]


def test_a_missing_dataset_costs_the_thumbnails_not_the_report(sweep, tmp_path):
    data, _, folder = sweep
    moved = json.loads(json.dumps(data))
    moved["config"]["dataset"]["path"] = str(tmp_path / "gone")
    html = gallery_html(moved, None)
    assert html.count("not available") == 6 and "img3.png" in html


def test_a_big_runs_gallery_shows_its_most_disputed_images_and_says_so(sweep):
    data, cache, _ = sweep
    html = gallery_html(data, cache, max_cards=2)
    assert re.findall(r"<h3>(img\d\.png)", html) == re.findall(r"<h3>(img\d\.png)", gallery_html(data, cache))[:2]
    assert "Shown: the 2 of 6 images the cells disagree on most, most disputed first." in html


def test_disputed_images_first_and_errors_visible(sweep):
    data, cache, _ = sweep
    html = gallery_html(data, cache)
    order = re.findall(r"<h3>(img\d\.png)", html)
    assert order[0] == "img3.png" and set(order) == {f"img{i}.png" for i in range(6)}
    assert order.index("img5.png") < order.index("img0.png")  # failed everywhere: more disputed than all right
    assert re.search(r'class="err">[^<]+: error<span class="msg">bad_request: [^<]+</span>', html)
    assert re.search(r'class="wrong">m1/seq@32px: <b>9</b>', html)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


MEASURE = """<script>
addEventListener('load', () => {
  const W = document.documentElement.clientWidth, out = {page: document.documentElement.scrollWidth, width: W,
    overlaps: [], cut: [], outside: []};
  for (const row of document.querySelectorAll('thead tr')) {
    const ths = [...row.children];
    for (let i = 1; i < ths.length; i++) {
      if (ths[i - 1].getBoundingClientRect().right > ths[i].getBoundingClientRect().left + 0.5)
        out.overlaps.push(ths[i].textContent);
    }
  }
  for (const c of document.querySelectorAll('td, th'))
    if (c.scrollWidth > c.clientWidth + 1) out.cut.push(c.textContent);
  for (const s of document.querySelectorAll('.scroll, .card, figure'))
    if (s.getBoundingClientRect().right > W + 0.5) out.outside.push(s.className || s.tagName);
  const tables = [...document.querySelectorAll('.scroll')].map(s => [s.scrollWidth, s.clientWidth]);
  out.wide_tables = tables.filter(([a, b]) => a > b + 1).length;
  document.body.innerHTML = '<pre id="measure">' + JSON.stringify(out) + '</pre>';
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no chromium on PATH: cannot measure the page")
def test_the_page_fits_1280_px(sweep, tmp_path):
    data, cache, _ = sweep
    page = write_html_report(data, tmp_path / "report.html", cache_dir=cache)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    found = re.search(r'<pre id="measure">(.*?)</pre>', done.stdout)
    assert found, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    got = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert got["page"] <= got["width"], got  # no horizontal scroll of the page
    assert got["overlaps"] == [] and got["cut"] == [] and got["outside"] == [], got
    # 20 cells: the answers table may scroll inside its own box, but nothing else does
    assert got["wide_tables"] <= 1, got
