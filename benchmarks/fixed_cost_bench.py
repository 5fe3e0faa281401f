"""(h) Client CPU of ``visionbench run``: the fixed cost a run pays whatever its size, and the cost per request,
against a bare asyncio + google-genai script sending the same requests to the same emulator.

Each measured command is a process of its own, and its CPU time (user + system, from ``os.wait4``) is what is
counted: steadier than wall time on a shared machine. The emulator is a separate process (``visionbench emulate``,
zero latency, no faults), so its CPU is not in the figures; a config with an ``emulator:`` section would start it
inside the run's process instead, and its CPU would be counted as the client's.

Runs of n_small, n_mid and n_large requests (one concurrent cell, 8 in flight, 96 px images, warm preprocessing
cache), for ``visionbench run`` (default outputs: the tables and report.html without charts) and for the bare script
(Python start-up, the SDK's import, one client, a semaphore, ``asyncio.gather``):

    marginal = (cpu(n_large) - cpu(n_mid)) / (n_large - n_mid)      CPU per request, at scale
    fixed    = cpu(n_small) - n_small x marginal                       CPU a run pays whatever its size

n_mid is above the terminal answers table's 200 rows and the gallery's 120 images, so those capped costs count as
fixed, not per request; the slope from n_small to n_mid (which includes them) is printed too. Goals: the run's fixed
cost <= 1.5 s, its marginal cost <= 1.10x the bare script's. Also shown: a small run with ``--no-report`` and with
``--charts``.

The slope is taken over 2,100 requests and 5 rounds: a process's CPU varies by some 0.05 s from run to run, which
over the 600 requests from 300 to 900 moved the per-request ratio by about 0.1 between runs.

    python benchmarks/fixed_cost_bench.py [--small 10] [--mid 300] [--large 2400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPT = "How many people are in this image? Answer with a single integer."
CONCURRENCY = 8


async def bare(base_url: str, dataset: Path, n: int, key_env: str) -> None:
    """The baseline: the gemini provider's very call (same contents and config), nothing around it.

    Its process imports nothing else: not even the benchmarks' harness (numpy, PIL, PyYAML), which a bare
    script would not pay for either."""
    from google import genai
    from google.genai import types

    images = [path.read_bytes() for path in sorted(dataset.glob("*.jpg"))[:n]]
    client = genai.Client(
        api_key=os.environ[key_env],
        http_options=types.HttpOptions(base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1)),
    )
    config = types.GenerateContentConfig(
        max_output_tokens=1024,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(data: bytes) -> None:
        async with semaphore:
            parts = [types.Part.from_bytes(data=data, mime_type="image/jpeg"), types.Part.from_text(text=PROMPT)]
            contents = [types.Content(role="user", parts=parts)]
            response = await client.aio.models.generate_content(
                model="gemini-3.5-flash", contents=contents, config=config
            )
            assert response.text

    await asyncio.gather(*(one(data) for data in images))
    await client.aio.aclose()


def cpu_of(cmd: list[str]) -> float:
    """The CPU seconds (user + system) of ``cmd``, run to its end in a process of its own."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-500:]}")
    return usage.ru_utime + usage.ru_stime


def run_cmd(config: Path, tmp: Path, *extra: str) -> list[str]:
    results, cache = str(tmp / "results"), str(tmp / "cache")
    return [sys.executable, "-m", "visionbench.cli", "run", str(config), "--results", results, "--cache-dir", cache,
            "--quiet", "--yes", *extra]  # fmt: skip


def bare_cmd(url: str, dataset: Path, n: int, key_env: str) -> list[str]:
    return [sys.executable, __file__, "--bare", url, str(dataset), str(n), key_env]


def line(name: str, fixed: float, marginal: float) -> str:
    return f"  {name:<24} fixed {fixed:5.2f} s CPU   marginal {1000 * marginal:5.2f} ms CPU per request"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10, help="requests of the small run (default 10)")
    parser.add_argument("--mid", type=int, default=300, help="requests of the middle run (default 300)")
    parser.add_argument("--large", type=int, default=2400, help="requests of the large run (default 2400)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each figure is the median (default 5)")
    parser.add_argument("--bare", nargs=4, metavar=("URL", "DATASET", "N", "KEY_ENV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        url, dataset, n, key_env = args.bare
        asyncio.run(bare(url, Path(dataset), int(n), key_env))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import EMULATOR_KEY_ENV, emulator_process, make_dataset, write_config, write_profiles

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        dataset = make_dataset(tmp / "data", args.large)
        strategies = [{"name": "concurrent", "max_concurrency": CONCURRENCY}]
        with emulator_process(dataset, write_profiles(tmp / "zero.yaml", base_s=0.0)) as url:
            sizes = {"small": args.small, "mid": args.mid, "large": args.large}
            configs = {
                name: write_config(tmp / f"{name}.yaml", dataset, url, strategies, limit=n) for name, n in sizes.items()
            }
            cpu_of(run_cmd(configs["large"], tmp))  # warm-up: the cache holds every image, .pyc files are written
            cpu_of(bare_cmd(url, dataset, args.large, EMULATOR_KEY_ENV))
            kinds = {f"run {name}": run_cmd(config, tmp) for name, config in configs.items()}
            kinds |= {f"bare {name}": bare_cmd(url, dataset, n, EMULATOR_KEY_ENV) for name, n in sizes.items()}
            kinds["run small --no-report"] = run_cmd(configs["small"], tmp, "--no-report")
            kinds["run small --charts"] = run_cmd(configs["small"], tmp, "--charts")
            got: dict[str, list[float]] = {k: [] for k in kinds}
            for i in range(args.rounds):  # interleaved, order alternating, so drift hits every kind alike
                for kind in list(kinds)[:: 1 if i % 2 == 0 else -1]:
                    got[kind].append(cpu_of(kinds[kind]))
    cpu = {k: statistics.median(v) for k, v in got.items()}
    spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in got.items()}

    def slope(who: str, a: str, b: str) -> float:
        return (cpu[f"{who} {b}"] - cpu[f"{who} {a}"]) / (getattr(args, b) - getattr(args, a))

    run_marginal, bare_marginal = slope("run", "mid", "large"), slope("bare", "mid", "large")
    run_fixed = cpu["run small"] - args.small * run_marginal
    bare_fixed = cpu["bare small"] - args.small * bare_marginal
    print(f"client CPU, median of {args.rounds} rounds (min-max), zero-latency emulator in its own process:")
    for kind, value in cpu.items():
        n = getattr(args, kind.split()[1])
        print(f"  {kind:<24} {value:5.2f} s  ({spread[kind]}), {n} requests")
    print(line("visionbench run", run_fixed, run_marginal))
    print(line("bare asyncio + SDK", bare_fixed, bare_marginal))
    early = slope("run", "small", "mid") / slope("bare", "small", "mid")
    print(
        f"(h) fixed cost of visionbench run: {run_fixed:.2f} s CPU (goal <= 1.5), of which {run_fixed - bare_fixed:.2f}"
        f" s beyond the bare script's ({bare_fixed:.2f} s: Python and the SDK's import); marginal per request "
        f"{run_marginal / bare_marginal:.2f}x the bare script's (goal <= 1.10; {early:.2f}x from {args.small} to "
        f"{args.mid} requests, with the capped report tables)"
    )
    base = cpu["run small"]
    print(
        f"    a small run with --no-report: {cpu['run small --no-report'] - base:+.2f} s; "
        f"with --charts: {cpu['run small --charts'] - base:+.2f} s"
    )


if __name__ == "__main__":
    main()
