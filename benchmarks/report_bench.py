"""``visionbench report`` and ``compare`` on a big bundle with errors: wall time, peak RSS, report.html's size.

A real run of the concurrent strategy (6 images, zero-latency emulator, in this process) gives the template
record; from it, ``--n`` items (100,000 by default) are answered by ``--cells`` cells (3), each with its own share
of wrong answers (8% to 35%) and failed requests (0.5% to 3%) and its own latencies, as a real run's bundle is: a
bundle where every answer is right skips the intervals' bootstrap and the paired tests. A second bundle like it (other
draws) is made for ``compare``. Goal (issue 27): report and compare each under 10 s and 400 MB at 100k items.

    python benchmarks/report_bench.py [--n 100000] [--cells 3]
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

import numpy as np
import yaml

from visionbench.results import bundle as bundle_mod

GOAL_S, GOAL_MB = 10.0, 400.0
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


#: Per cell (cycled): the share of answers that are wrong and the share of items whose request failed.
ERROR_RATES = [(0.08, 0.01), (0.20, 0.03), (0.35, 0.005), (0.12, 0.02)]
MODELS = ["gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.5-pro", "gemini-3-pro-preview"]
PRICE_FACTORS = [1.0, 0.3, 4.0, 2.5]  # of the template's cost, per model


def grown(base: dict, n: int, run_id: str, cells: int = 3, seed: int = 0) -> dict:
    """``base`` grown to ``n`` items (ids img000000..., labels 0-40) and ``cells`` cells of one record an item.

    As a real run's bundle, not a flattering one: each cell has its own share of wrong answers (off by 1 to 5)
    and of failed requests (HTTP 503 after 4 attempts, no answer), its own latencies; the summaries agree."""
    rng = np.random.default_rng(seed)
    out = copy.deepcopy({k: v for k, v in base.items() if k not in ("items", "records", "cells")})
    out["run_id"] = run_id
    out["status"] = "incomplete"  # failed items: as a real run with failures ends
    [cell] = base["cells"]
    template_record = base["records"][0]
    labels = rng.integers(0, 41, size=n)
    ids = [f"img{i:06d}.jpg" for i in range(n)]
    out["items"] = [{"id": ids[i], "sha256": f"{i:064x}", "label": int(labels[i])} for i in range(n)]
    price = next(iter(out["pricing"]["used"].values()))
    records, entries = [], []
    for c in range(cells):
        wrong_rate, fail_rate = ERROR_RATES[c % len(ERROR_RATES)]
        model = MODELS[c % len(MODELS)] + (f"-{c // len(MODELS)}" if c >= len(MODELS) else "")
        cell_id = f"gemini/{model}/concurrent"
        out["pricing"]["used"][f"gemini/{model}"] = price
        failed = rng.random(n) < fail_rate
        wrong = (rng.random(n) < wrong_rate) & ~failed
        offsets = rng.integers(1, 6, size=n) * rng.choice([-1, 1], size=n)
        values = np.where(wrong, np.maximum(labels + offsets, 0), labels)
        unit_cost = template_record["cost_usd"] * PRICE_FACTORS[c % len(MODELS)] * (1 + 0.01 * (c // len(MODELS)))
        latency = rng.lognormal(np.log(0.8 + c * 0.4), 0.35, size=n)
        starts = np.cumsum(rng.exponential(0.02, size=n))
        answers, errors, abs_err = {}, 0, 0
        for i in range(n):
            item_id = ids[i]
            if failed[i]:
                message = "gemini HTTP 503: the model is overloaded (4 attempts)"
                answer = {"item_id": item_id, "value": None, "error": message}
                error = {"kind": "server_error", "message": message, "status": 503}
                attempts, raw, cost, usage = 4, None, None, None
                errors += 1
            else:
                value = int(values[i])
                answer = {"item_id": item_id, "value": value, "error": None}
                error, attempts, raw, cost = None, 1, str(value), unit_cost
                usage = template_record["usage"]
                abs_err += abs(value - int(labels[i]))
            answers[item_id] = answer
            lat = float(latency[i])
            records.append(
                dict(
                    template_record,
                    cell=cell_id,
                    model=model,
                    model_version=model,
                    item_ids=[item_id],
                    answers=[answer],
                    error=error,
                    attempts=attempts,
                    raw_text=raw,
                    cost_usd=cost,
                    usage=usage,
                    start_s=float(starts[i]),
                    end_s=float(starts[i]) + lat,
                    latency_s=lat,
                    request_id=f"r{c}-{i}",
                )
            )
        answered = n - errors
        exact = int((~wrong & ~failed).sum())
        summary = dict(
            cell["summary"],
            items=n,
            requests=n,
            attempts=n + 3 * errors,
            errors=errors,
            labelled=n,
            answered=answered,
            exact_match=exact / answered,
            mae=abs_err / answered,
            wall_s=float(starts[-1] + latency[-1]),
            latency_p50_s=float(np.percentile(latency, 50)),
            latency_p90_s=float(np.percentile(latency, 90)),
            latency_p95_s=float(np.percentile(latency, 95)),
            latency_p99_s=float(np.percentile(latency, 99)),
            service_p50_s=float(np.percentile(latency, 50)),
            cost_usd=unit_cost * answered,
            cost_per_1k_images_usd=unit_cost * answered * 1000 / n,
            input_tokens=template_record["usage"]["input_tokens"] * answered,
            output_tokens=answered,
        )
        summary["scores"] = {
            "numeric": {"mean": exact / answered, "n": answered, "metrics": {"mae": abs_err / answered}}
        }
        entries.append(dict(cell, id=cell_id, model=model, summary=summary, answers=answers))
    out.update(records=records, cells=entries)
    return out


def measure(cmd: list[str]) -> tuple[int, float, float, str]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    code, wall, peak, err = out.stdout.strip().split(" ", 3)
    return int(code), float(wall), float(peak), err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="items (default 100,000)")
    parser.add_argument("--cells", type=int, default=3, help="cells, each answering every item (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = template(work)
        runs = []
        t = time.perf_counter()
        for seed, name in enumerate(("big-a", "big-b")):
            folder = work / name
            folder.mkdir()
            data = grown(base, args.n, name, args.cells, seed)
            bundle_mod.write(folder / "bundle.json", data)  # as a finished run writes it
            runs.append(folder)
        size_mb = (runs[0] / "bundle.json").stat().st_size / 2**20
        wrong = sum(c["summary"]["answered"] * (1 - c["summary"]["exact_match"]) for c in data["cells"])
        failed = sum(c["summary"]["errors"] for c in data["cells"])
        print(
            f"two bundles of {args.n} items x {args.cells} cells ({size_mb:.0f} MB each; {wrong:.0f} wrong answers and "
            f"{failed} failed requests each) made in {time.perf_counter() - t:.1f} s"
        )
        del data
        cli = [sys.executable, "-m", "visionbench.cli"]
        rows = [
            ("report", measure([*cli, "report", str(runs[0])])),
            ("compare", measure([*cli, "compare", str(runs[0]), str(runs[1]), "--html", str(work / "cmp.html")])),
        ]
        html_mb = (runs[0] / "report.html").stat().st_size / 2**20 if (runs[0] / "report.html").exists() else 0.0
    print(f"{'command':>8} {'exit':>4} {'wall s':>7} {'peak RSS MB':>11}")
    for name, (code, wall, peak, err) in rows:
        ok = code in (0,) and wall < GOAL_S and peak < GOAL_MB
        print(f"{name:>8} {code:>4} {wall:>7.1f} {peak:>11.0f}  (goal < {GOAL_S:g} s, < {GOAL_MB:g} MB): ", end="")
        print("PASS" if ok else f"FAIL{'' if code == 0 else ' ' + err}")
    print(f"report.html: {html_mb:.2f} MB")


if __name__ == "__main__":
    main()
