"""(a) Framework overhead and (b) concurrency efficiency, through the real google-genai SDK against the emulator.

(a) requests/s of the concurrent strategy (preprocessing cache, retry layer, limiter, records, bundle writes)
    vs a bare ``asyncio.gather`` of the same SDK calls at the same concurrency, against a zero-latency
    emulator in another process. Goal: ratio >= 0.9.
(b) with a fixed emulated latency L and concurrency C, the concurrent strategy's wall time vs the ideal
    ceil(n / C) x L. Goal: ratio <= 1.05. The ideal leaves out the client's own work per request (the SDK's
    ~3 ms of CPU here, C of them per wave), so the same calls in a bare gather are timed beside it: the gap
    between the two is the framework's. L defaults to 2 s (real vision requests take seconds; the seed's
    took ~20 s); at 1 s and C=16 the bare gather alone is already at ~1.05 on a 2-core machine.

    python benchmarks/overhead_bench.py [--n 600] [--concurrency 32] [--latency 2.0] [--b-concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import EMULATOR_KEY_ENV, emulator_process, make_dataset, write_config, write_profiles  # noqa: E402

from visionbench.data.image_bytes import Preprocessor  # noqa: E402
from visionbench.preprocessing import Preprocessing  # noqa: E402
from visionbench.results import bundle as bundle_mod  # noqa: E402
from visionbench.run.plan import load_plan  # noqa: E402
from visionbench.run.plugins import default_registry  # noqa: E402
from visionbench.run.runner import run  # noqa: E402

PROMPT = "How many people are in this image? Answer with a single integer."


@dataclass
class Timing:
    rate: float  # requests/s
    wall_s: float
    cpu_ms: float  # this process's CPU time per request: steadier than wall time on a shared machine


async def framework_rate(config: Path, results: Path, cache: Path) -> Timing:
    """The concurrent cell's requests/s and wall time as the framework timed it, and the CPU time it took."""
    registry = default_registry()
    plan = load_plan(config, registry)
    (strategy,) = plan.strategies.values()
    cpu_s = 0.0
    run_strategy = strategy.run

    async def run_timed(items, ctx) -> None:  # the strategy's run, and nothing of the setup around it
        nonlocal cpu_s
        start = time.process_time()
        await run_strategy(items, ctx)
        cpu_s = time.process_time() - start

    strategy.run = run_timed
    data = bundle_mod.load(await run(plan, results_dir=results, cache_dir=cache))
    summary = data["cells"][0]["summary"]
    assert summary["errors"] == 0, summary
    return Timing(summary["requests"] / summary["wall_s"], summary["wall_s"], 1000 * cpu_s / summary["requests"])


async def bare_rate(base_url: str, dataset: Path, concurrency: int, cache: Path, limit: int | None = None) -> Timing:
    """The same SDK calls with nothing around them: one client, a semaphore, asyncio.gather."""
    from google import genai
    from google.genai import types

    items = sorted(dataset.glob("*.jpg"))
    with Preprocessor(cache) as pre:  # same bytes as the framework sends, prepared before the clock starts
        from visionbench.data.dataset import load_dataset

        images = [pre.prepare(item, Preprocessing(max_side=96)) for item in load_dataset(dataset, None, None)]
    assert len(images) == len(items)
    images = images[:limit]
    client = genai.Client(
        api_key=os.environ[EMULATOR_KEY_ENV],
        http_options=types.HttpOptions(base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1)),
    )
    semaphore = asyncio.Semaphore(concurrency)

    # The very call the gemini provider makes (same contents and config), so the SDK's own work is equal.
    config = types.GenerateContentConfig(
        max_output_tokens=1024,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )

    async def one(image) -> None:
        async with semaphore:
            parts = [
                types.Part.from_bytes(data=image.data, mime_type=image.mime_type),
                types.Part.from_text(text=PROMPT),
            ]
            contents = [types.Content(role="user", parts=parts)]
            response = await client.aio.models.generate_content(
                model="gemini-3.5-flash", contents=contents, config=config
            )
            assert response.text

    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(image) for image in images))
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    await client.aio.aclose()
    return Timing(len(images) / elapsed, elapsed, 1000 * cpu_s / len(images))


def _middle_half(values: list[float]) -> str:
    low, _, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{low:.2f} to {high:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=2.0, help="emulated latency for (b), seconds")
    parser.add_argument("--b-concurrency", type=int, default=16, help="concurrency for (b)")
    parser.add_argument(
        "--rounds", type=int, default=21, help="(a) rounds: single rounds swing by +-15%% on a shared machine"
    )
    parser.add_argument("--b-rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = make_dataset(tmp / "data", args.n)
        cache = tmp / "cache"
        strategies = [{"name": "concurrent", "max_concurrency": args.concurrency}]

        with emulator_process(dataset, write_profiles(tmp / "zero.yaml", base_s=0.0)) as url:
            config = write_config(tmp / "overhead.yaml", dataset, url, strategies)
            asyncio.run(framework_rate(config, tmp / "r", cache))  # warm-up: caches, imports, connections
            ratios, cpu_ratios = [], []
            for i in range(args.rounds):  # interleaved, order alternating, so drift and noise hit both alike
                if i % 2 == 0:
                    bare = asyncio.run(bare_rate(url, dataset, args.concurrency, cache))
                    framework = asyncio.run(framework_rate(config, tmp / "r", cache))
                else:
                    framework = asyncio.run(framework_rate(config, tmp / "r", cache))
                    bare = asyncio.run(bare_rate(url, dataset, args.concurrency, cache))
                ratios.append(framework.rate / bare.rate)
                cpu_ratios.append(bare.cpu_ms / framework.cpu_ms)
                print(
                    f"(a) round {i + 1}: bare gather {bare.rate:7.1f} req/s ({bare.cpu_ms:.2f} ms CPU each), "
                    f"framework {framework.rate:7.1f} req/s ({framework.cpu_ms:.2f} ms CPU each), "
                    f"ratio {ratios[-1]:.2f}"
                )
            print(
                f"(a) framework overhead: median ratio {statistics.median(ratios):.2f} (goal >= 0.9; middle half of "
                f"rounds {_middle_half(ratios)}); {args.n} requests, concurrency {args.concurrency}, "
                "zero-latency emulator"
            )
            print(
                f"(a) client CPU per request, bare / framework: median {statistics.median(cpu_ratios):.2f} "
                f"(middle half {_middle_half(cpu_ratios)})"
            )

        with emulator_process(dataset, write_profiles(tmp / "fixed.yaml", base_s=args.latency)) as url:
            n = min(args.n, 10 * args.b_concurrency)
            c = args.b_concurrency
            config = write_config(tmp / "efficiency.yaml", dataset, url, [{"name": "concurrent", "max_concurrency": c}])
            text = config.read_text().replace("labels: labels.json", f"labels: labels.json\n  limit: {n}")
            config.write_text(text)
            ideal = math.ceil(n / c) * args.latency
            asyncio.run(framework_rate(config, tmp / "r", cache))  # warm-up: connections at this latency
            for _ in range(args.b_rounds):
                wall = asyncio.run(framework_rate(config, tmp / "r", cache)).wall_s
                bare_wall = asyncio.run(bare_rate(url, dataset, c, cache, limit=n)).wall_s
                print(
                    f"(b) concurrency efficiency: {n} requests, C={c}, latency {args.latency} s: "
                    f"wall {wall:.2f} s vs ideal {ideal:.2f} s, ratio {wall / ideal:.3f} (goal <= 1.05); "
                    f"a bare gather of the same SDK calls: {bare_wall / ideal:.3f}"
                )


if __name__ == "__main__":
    main()
