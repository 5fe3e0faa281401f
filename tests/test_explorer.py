"""report.html's item explorer (issue 28, part 3): filter, sort and open items, in the page, in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import fakeplugin
import pytest
import yaml
from PIL import Image

from visionbench.report.explorer import FAILED, RIGHT, WRONG, explorer_data
from visionbench.report.html import write_html_report
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run

N = 5000


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def rendered(page: Path, state: str) -> str:
    """The page's DOM after its script ran, opened at ``report.html#state`` in headless Chromium."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    return subprocess.run(
        [*command, "--dump-dom", f"file://{page}#{state}"], capture_output=True, text=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> tuple[dict, Path]:
    """5,000 images in two cells: cell "a" answers image k with k % 7 (label k % 5: right when k % 35 < 5),
    cell "b" right except every 50th image, which fails; each image's group is "odd" or "even"."""
    tmp = tmp_path_factory.mktemp("explorer")
    folder = tmp / "images"
    folder.mkdir()
    rows = []
    for k in range(N):  # distinct bytes per image, or the dataset would be 5,000 copies of one
        name = f"img{k:04d}.png"
        Image.new("RGB", (8, 8), (k % 256, k // 256, 7)).save(folder / name)
        rows.append({"id": name, "image": name, "count": k % 5, "parity": "odd" if k % 2 else "even"})
    (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    answers_a = {f"img{k:04d}.png": k % 7 for k in range(N)}
    failures_b = {f"img{k:04d}.png": ["bad_request"] for k in range(0, N, 50)}
    config = {
        "name": "explore",
        "dataset": {"path": str(folder / "rows.jsonl"), "answer": "count"},
        "task": {"id": "count", "prompt": "How many?", "answer": "integer", "group_by": "parity"},
        "preprocessing": {"max_side": 16},
        "retry": {"max_attempts": 1, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 5},
        "providers": {
            "a": {"plugin": "scripted", "answers": answers_a},
            "b": {
                "plugin": "scripted",
                "answers": {f"img{k:04d}.png": k % 5 for k in range(N)},
                "failures": failures_b,
            },
        },
        "matrix": [
            {"provider": "a", "models": ["m1"], "strategies": [{"name": "concurrent", "max_concurrency": 16}]},
            {"provider": "b", "models": ["m1"], "strategies": [{"name": "concurrent", "max_concurrency": 16}]},
        ],
    }
    path = tmp / "explore.yaml"
    path.write_text(yaml.safe_dump(config))
    registry = collect(make_manager([fakeplugin]))
    out = asyncio.run(run(load_plan(path, registry), results_dir=tmp / "r", cache_dir=tmp / "c"))
    data = bundle_mod.load(out, lazy=True)
    page = write_html_report(data, out.parent / "report.html", cache_dir=tmp / "c")
    return data, page


def test_the_filters_figures_are_each_answers(big_run):
    data, _ = big_run
    cells = [e.id for e in data.entries_of(repeat=0)]
    got = explorer_data(data, cells, data.item_entries[:10], "parity")
    a, b = got["items"][7], got["items"][0]
    # image 7: label 2, cell a said 0 (wrong by 2), cell b said 2 (right); image 0: b failed
    assert a["s"] == [WRONG, RIGHT] and a["e"] == [2.0, 0.0] and a["g"] == "odd"
    assert b["s"][1] == FAILED and b["d"][1][1].startswith("bad_request") and b["d"][1][0] == 1
    assert all(latency is not None and latency >= 0 for latency in a["l"])


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium/chromium-browser on PATH: cannot run the page's script")
@pytest.mark.parametrize(
    ("hash_", "expected"),
    [
        ("state=wrong&cell=0", lambda k: k % 7 != k % 5),
        ("state=failed", lambda k: k % 50 == 0),
        ("state=failed&group=odd", lambda k: False),  # every failed image (k % 50 == 0) is even
        ("state=wrong&cell=0&group=even", lambda k: k % 7 != k % 5 and k % 2 == 0),
        ("q=img004", lambda k: 40 <= k < 50),
    ],
)
def test_the_page_filters_5000_items_in_chromium(big_run, hash_, expected):
    _, page = big_run
    dom = rendered(page, hash_)
    shown = int(re.search(r'data-vb-shown="(\d+)"', dom).group(1))
    want = sum(1 for k in range(N) if expected(k))
    assert shown == want
    rows = re.findall(r"<tr( hidden=\"\")?><td class=\"l\">(img\d{4}\.png)</td>", dom)
    visible = [name for hidden, name in rows if not hidden]
    assert len(rows) == N and len(visible) == want
    assert all(expected(int(name[3:7])) for name in visible)
    assert f"{want:,} of {N:,} images" in dom


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium/chromium-browser on PATH: cannot run the page's script")
def test_sorting_by_error_puts_the_failures_then_the_largest_errors_first(big_run):
    _, page = big_run
    dom = rendered(page, "sort=error&cell=0")
    names = re.findall(r"<tr><td class=\"l\">(img\d{4}\.png)</td>", dom)
    errors = [abs(k % 7 - k % 5) for k in (int(n[3:7]) for n in names)]
    assert len(names) == N and errors == sorted(errors, reverse=True) and errors[0] == 6  # k = 20: said 6, label 0
