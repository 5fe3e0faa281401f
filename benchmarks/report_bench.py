"""``visionbench report`` and ``compare`` on a big bundle: wall time and peak RSS, each in a process of its own.

A real run of the concurrent strategy (6 images, zero-latency emulator, in this process) gives the template;
its items, records and answers are repeated, with fresh ids, to ``--n`` records (100,000 by default), and a
second bundle like it is made for ``compare``. Goal (issue 17): report and compare each under 10 s and under
300 MB at 100k records.

    python benchmarks/report_bench.py [--n 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from visionbench.results import bundle as bundle_mod

GOAL_S, GOAL_MB = 10.0, 300.0
SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "wall = time.perf_counter() - t\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print(rc.returncode, wall, peak, repr(rc.stderr[-300:]))\n"
)


def template(work: Path) -> dict:
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    profiles = work / "profiles.yaml"
    profile = {"latency": {"base_s": 0, "jitter": 0}, "faults": {"http_500": 0, "http_503": 0, "slow": {}}}
    profiles.write_text(yaml.safe_dump({"time_scale": 0, "defaults": profile, "models": {"*": {}}}))
    config = {
        "name": "report-bench",
        "dataset": {"path": str(SAMPLES), "labels": "labels.json", "label_field": "person_count", "limit": 6},
        "task": {"prompt": "How many people are in this image? Answer with a single integer.", "answer": "integer"},
        "preprocessing": {"max_side": 96},
        "emulator": {"profiles": str(profiles)},
        "matrix": [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["concurrent"]}],
    }
    path = work / "report-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = load_plan(path, default_registry())
    return bundle_mod.load(asyncio.run(run(plan, results_dir=work / "template", cache_dir=None)))


def grown(base: dict, n: int, run_id: str) -> dict:
    """``base`` with ``n`` items and one record each, ids img000000..., cycling through its own."""
    out = copy.deepcopy({k: v for k, v in base.items() if k not in ("items", "records", "cells")})
    out["run_id"] = run_id
    [cell] = base["cells"]
    records = {r["item_ids"][0]: r for r in base["records"]}
    items, new_records, answers = [], [], {}
    for i in range(n):
        source = base["items"][i % len(base["items"])]
        item_id = f"img{i:06d}.jpg"
        items.append({**source, "id": item_id, "sha256": f"{i:064x}"})
        record = dict(records[source["id"]], item_ids=[item_id])
        record["answers"] = [dict(a, item_id=item_id) for a in record["answers"]]
        new_records.append(record)
        answers[item_id] = dict(cell["answers"][source["id"]], item_id=item_id)
    summary = dict(cell["summary"], items=n, requests=n, attempts=n)
    out.update(items=items, records=new_records, cells=[dict(cell, answers=answers, summary=summary)])
    return out


def measure(cmd: list[str]) -> tuple[int, float, float, str]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    code, wall, peak, err = out.stdout.strip().split(" ", 3)
    return int(code), float(wall), float(peak), err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = template(work)
        runs = []
        t = time.perf_counter()
        for name in ("big-a", "big-b"):
            folder = work / name
            folder.mkdir()
            bundle_mod.write(folder / "bundle.json", grown(base, args.n, name))  # as a finished run writes it
            runs.append(folder)
        size_mb = (runs[0] / "bundle.json").stat().st_size / 2**20
        print(f"two bundles of {args.n} records ({size_mb:.0f} MB each) made in {time.perf_counter() - t:.1f} s")
        cli = [sys.executable, "-m", "visionbench.cli"]
        rows = [
            ("report", measure([*cli, "report", str(runs[0])])),
            ("compare", measure([*cli, "compare", str(runs[0]), str(runs[1]), "--html", str(work / "cmp.html")])),
        ]
    print(f"{'command':>8} {'exit':>4} {'wall s':>7} {'peak RSS MB':>11}")
    for name, (code, wall, peak, err) in rows:
        ok = code == 0 and wall < GOAL_S and peak < GOAL_MB
        print(f"{name:>8} {code:>4} {wall:>7.1f} {peak:>11.0f}  (goal < {GOAL_S:g} s, < {GOAL_MB:g} MB): ", end="")
        print("PASS" if ok else f"FAIL{'' if code == 0 else ' ' + err}")


if __name__ == "__main__":
    main()
