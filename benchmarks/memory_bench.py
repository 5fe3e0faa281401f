"""(d) Memory at scale: the concurrent strategy through the real google-genai SDK, 10k vs 100k items.

Each size runs in a fresh subprocess of this script (so its peak RSS, ``ru_maxrss``, is that size's alone):
the whole run as ``visionbench run`` does it (dataset load and hashing, an empty preprocessing cache, concurrent
cell at concurrency 64, records, bundle writes), against a zero-latency emulator in another process that
indexes all the images (of the largest size). Goals (issue 17): peak RSS of the benchmarked process < 300 MB at
100k items, and flat as items grow: 100k/10k peak-RSS ratio <= 1.15. Also prints wall time and requests/s
(expected: a few hundred), RSS along the run, and how much of it is heap (RssAnon) vs mapped files (RssFile:
libraries, the cache's SQLite).

    python benchmarks/memory_bench.py [--sizes 10000 100000] [--concurrency 64] [--warm-cache] [--tracemalloc]

``--tracemalloc`` also prints, per size, what was allocated after 10% of the items and is still alive at 95%,
by source line: what the run accumulates (slower; figures taken with it on include tracemalloc's own memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emulator_process, make_dataset, write_config, write_profiles  # noqa: E402

RSS_GOAL_MB = 300
FLAT_GOAL = 1.15


def rss_mb(field: str = "VmRSS") -> float:
    """Current resident set size, MB: all of it (VmRSS), the heap's (RssAnon) or mapped files' (RssFile)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class Sampler:
    """A progress display that notes RSS and the time along the way (and a tracemalloc snapshot near the end)."""

    MARKS = (0.1, 0.5, 0.9, 1.0)

    def __init__(self, total: int, trace: bool) -> None:
        self.total, self.trace, self.done = total, trace, 0
        self.marks = {max(1, int(total * f)): f for f in self.MARKS}
        self.rss: dict[float, float] = {}
        self.at_s: dict[float, float] = {}
        self.peak_before_finish = float("nan")  # ru_maxrss when the last record is in, before the final write
        self.anon_file = (float("nan"), float("nan"))
        self.snapshot: tracemalloc.Snapshot | None = None
        self.t0 = time.perf_counter()

    def start_cell(self, label: str, total: int) -> None:
        self.t0 = time.perf_counter()

    def advance(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        for at, frac in self.marks.items():
            if before < at <= self.done:
                self.rss[frac], self.at_s[frac] = rss_mb(), time.perf_counter() - self.t0
        if self.done >= self.total:
            self.peak_before_finish = peak_rss_mb()
            self.anon_file = (rss_mb("RssAnon"), rss_mb("RssFile"))  # heap vs mapped files (the cache's SQLite)
        # Traced from 10% on only: what the run accumulates, without the imports and warm-up (and much faster).
        if self.trace and not tracemalloc.is_tracing() and self.done >= 0.1 * self.total:
            tracemalloc.start(1)
        if self.trace and self.snapshot is None and self.done >= 0.95 * self.total:
            self.snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()

    def rates(self) -> list[float]:
        """Requests/s in the windows 0-10%, 10-50%, 50-90% and 90-100% of the items."""
        edges = [(0.0, 0.0), *((f, self.at_s.get(f, float("nan"))) for f in self.MARKS)]
        return [(b - a) * self.total / max(1e-9, tb - ta) for (a, ta), (b, tb) in zip(edges, edges[1:])]


def child(args: argparse.Namespace) -> None:
    """One size, in this process: prints a JSON line of figures last."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    work = Path(args.work)
    strategies = [{"name": "concurrent", "max_concurrency": args.concurrency}]
    config = write_config(work / f"memory-{args.n}.yaml", Path(args.dataset), args.url, strategies, limit=args.n)
    registry = default_registry()
    after_imports = rss_mb()
    start = time.perf_counter()
    plan = load_plan(config, registry)
    sampler = Sampler(len(plan.items), args.tracemalloc)
    after_prepare = rss_mb()
    cache = work / ("cache" if args.warm_cache else f"cache-{args.n}")
    path = asyncio.run(run(plan, results_dir=work / f"results-{args.n}", cache_dir=cache, progress=sampler))
    total_s = time.perf_counter() - start
    peak = peak_rss_mb()  # before this process reads the bundle back, which is no part of a run
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = bundle_mod.load(path)["cells"][0]["summary"]
    if sampler.snapshot is not None:
        print(f"--- tracemalloc, {args.n} items: allocated after 10% of the items and alive at 95%, by line ---")
        stats = sampler.snapshot.statistics("lineno")
        for stat in stats[:15]:
            print(f"  {stat.size / 2**20:7.2f} MB {stat.count:8d} blocks  {stat.traceback[0]}")
        print(f"  total traced: {sum(s.size for s in stats) / 2**20:.1f} MB")
    print(
        json.dumps(
            {
                "n": args.n,
                "requests": summary["requests"],
                "errors": summary["errors"],
                "wall_s": summary["wall_s"],
                "total_s": total_s,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": peak,
                "peak_before_finish_mb": sampler.peak_before_finish,
                "after_imports_mb": after_imports,
                "after_prepare_mb": after_prepare,
                "rss_along": [sampler.rss.get(f, float("nan")) for f in Sampler.MARKS],
                "anon_file_mb": sampler.anon_file,
                "rates": sampler.rates(),
                "bundle_mb": path.stat().st_size / 2**20,
            }
        )
    )


def warm(dataset: Path, cache: Path) -> None:
    """Fill the preprocessing cache with every image at the benchmark's settings (write_config's max_side 96)."""
    from visionbench.data.dataset import load_dataset
    from visionbench.data.image_bytes import Preprocessor
    from visionbench.preprocessing import Preprocessing

    with Preprocessor(cache) as pre:
        for item in load_dataset(dataset, "labels.json", None):
            pre.prepare(item, Preprocessing(max_side=96))


def run_size(n: int, args: argparse.Namespace, dataset: Path, url: str, work: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--n",
        str(n),
        "--dataset",
        str(dataset),
        "--url",
        url,
        "--work",
        str(work),
        "--concurrency",
        str(args.concurrency),
    ]
    cmd += [flag for flag, on in (("--tracemalloc", args.tracemalloc), ("--warm-cache", args.warm_cache)) if on]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the {n}-item run failed:\n{out.stdout}\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tracemalloc", action="store_true", help="print what holds memory near the end of each run")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="preprocess every image before the runs (default: each run starts with an empty cache)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_max = max(args.sizes)
        t = time.perf_counter()
        dataset = make_dataset(tmp / "data", n_max)
        print(f"dataset: {n_max} images of 96x96 made in {time.perf_counter() - t:.1f} s")
        if args.warm_cache:
            t = time.perf_counter()
            warm(dataset, tmp / "cache")
            print(f"preprocessing cache warmed in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        with emulator_process(dataset, write_profiles(tmp / "zero.yaml", base_s=0.0)) as url:
            print(f"emulator: indexed {n_max} images and listening after {time.perf_counter() - t:.1f} s")
            rows = [run_size(n, args, dataset, url, tmp) for n in args.sizes]

    print(
        f"\nconcurrent strategy, concurrency {args.concurrency}, gemini SDK, zero-latency emulator in another process"
    )
    print(
        f"{'items':>6} {'errors':>6} {'wall s':>7} {'req/s':>6} {'req/s over 0-10/-50/-90/-100% of items':>39} "
        f"{'CPU s':>6}"
    )
    for r in rows:
        rates = "/".join(f"{x:.0f}" for x in r["rates"])
        print(
            f"{r['n']:>6} {r['errors']:>6} {r['wall_s']:>7.1f} {r['requests'] / r['wall_s']:>6.0f} {rates:>39} "
            f"{r['cpu_s']:>6.1f}"
        )
    print(
        f"\n{'items':>6} {'peak RSS MB':>11} {'before final write':>18} {'RSS MB at 0/10/50/90/100%':>26} "
        f"{'heap/files MB at 100%':>22} {'bundle MB':>9}"
    )
    for r in rows:
        along = "/".join(f"{x:.0f}" for x in [r["after_prepare_mb"], *r["rss_along"]])
        split = "/".join(f"{x:.0f}" for x in r["anon_file_mb"])
        print(
            f"{r['n']:>6} {r['peak_rss_mb']:>11.1f} {r['peak_before_finish_mb']:>18.1f} {along:>26} {split:>22} "
            f"{r['bundle_mb']:>9.1f}"
        )
    small, big = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    per_k = (big["peak_rss_mb"] - small["peak_rss_mb"]) / max(1, big["n"] - small["n"]) * 1000
    ok_peak = big["peak_rss_mb"] < RSS_GOAL_MB and all(r["errors"] == 0 for r in rows)
    ok_flat = ratio <= FLAT_GOAL
    print(
        f"peak RSS at {big['n']} items: {big['peak_rss_mb']:.1f} MB (goal < {RSS_GOAL_MB} MB): "
        f"{'PASS' if ok_peak else 'FAIL'}"
    )
    print(
        f"{big['n']}/{small['n']} peak-RSS ratio {ratio:.2f} (goal <= {FLAT_GOAL}; {per_k:.1f} MB more per 1k "
        f"items): {'PASS' if ok_flat else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
