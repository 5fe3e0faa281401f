"""(e) The seed's headline: one prompt, four images, sent sequentially vs concurrently vs in a single prompt.

The emulator (another process, the real google-genai SDK in front of it) is calibrated to a fixed ~20 s per
request, as the seed measured; expected: sequential ~4 x 20 = 80 s, concurrent (max_concurrency 4) ~20 s, i.e.
~4x faster, and single-prompt (all four images in one request) ~20 s: the profile's latency is per request,
with no per-token term, so a longer prompt costs no more here. To keep it quick the emulator runs at a
time_scale (0.05: 1 s per request); the table gives the measured wall times and the same scaled back to emulated
seconds (divided by the time_scale). All three cells run in one experiment, one after another, with the
preprocessing cache warmed first (so the first cell does not pay alone for preprocessing).
Goal: sequential/concurrent speedup within 10% of 4x, i.e. 3.6x to 4.4x.

    python benchmarks/seed_headline_bench.py [--latency 20] [--time-scale 0.05] [--images group_2.jpg ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emulator_process, write_config, write_profiles  # noqa: E402

import visionbench  # noqa: E402
from visionbench import bundle as bundle_mod  # noqa: E402
from visionbench.plan import load_plan  # noqa: E402
from visionbench.plugins import default_registry  # noqa: E402
from visionbench.preprocess import Preprocessor  # noqa: E402
from visionbench.runner import run  # noqa: E402

SAMPLES = Path(visionbench.__file__).parent / "sample_images"
FOUR = ["group_2.jpg", "group_3.jpg", "group_4.jpg", "group_6.jpg"]
STRATEGIES = [
    "sequential",
    {"name": "concurrent", "max_concurrency": 4},
    {"name": "single-prompt", "chunk_size": 4},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=20.0, help="emulated seconds per request (base latency)")
    parser.add_argument("--time-scale", type=float, default=0.05, help="real seconds per emulated second")
    parser.add_argument("--images", nargs=4, default=FOUR, help=f"four images of {SAMPLES}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        profiles = write_profiles(tmp / "seed.yaml", base_s=args.latency, time_scale=args.time_scale)
        with emulator_process(SAMPLES, profiles) as url:
            config = write_config(
                tmp / "seed-headline.yaml",
                SAMPLES,
                url,
                STRATEGIES,
                include=args.images,
                label_field="person_count",
                max_side=1536,
            )
            registry = default_registry()
            plan = load_plan(config, registry)
            with Preprocessor(tmp / "cache") as pre:  # so the first cell does not pay alone for preprocessing
                for item in plan.items:
                    pre.prepare(item, plan.experiment.preprocessing)
            data = bundle_mod.load(asyncio.run(run(plan, results_dir=tmp / "r", cache_dir=tmp / "cache")))

    print(
        f"{len(plan.items)} images ({', '.join(args.images)}), gemini-2.5-flash through the google-genai SDK, "
        f"emulated latency {args.latency:g} s per request, time_scale {args.time_scale:g}"
    )
    print(
        f"{'strategy':<16} {'requests':>8} {'errors':>6} {'exact':>5} {'wall s':>8} {'emulated s':>11} "
        f"{'expected s':>11}"
    )
    expected = {"sequential": 4 * args.latency, "concurrent": args.latency, "single-prompt": args.latency}
    walls = {}
    for cell in data["cells"]:
        s, name = cell["summary"], cell["strategy"]
        walls[name] = s["wall_s"]
        exact = f"{round(s['exact_match'] * s['labelled'])}/{s['labelled']}" if s["exact_match"] is not None else "-"
        print(
            f"{cell['label']:<16} {s['requests']:>8} {s['errors']:>6} {exact:>5} {s['wall_s']:>8.2f} "
            f"{s['wall_s'] / args.time_scale:>11.1f} {expected[name]:>11.0f}"
        )
    speedup = walls["sequential"] / walls["concurrent"]
    ok = 3.6 <= speedup <= 4.4 and all(c["summary"]["errors"] == 0 for c in data["cells"])
    print(
        f"sequential / concurrent: {speedup:.2f}x (seed: ~80 s vs ~20 s, ~4x; goal 3.6x-4.4x): "
        f"{'PASS' if ok else 'FAIL'}"
    )
    print(
        f"sequential / single-prompt: {walls['sequential'] / walls['single-prompt']:.2f}x; "
        f"concurrent / single-prompt: {walls['concurrent'] / walls['single-prompt']:.2f}x"
    )


if __name__ == "__main__":
    main()
