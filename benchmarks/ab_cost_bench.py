"""(h, A/B) Client CPU per request of ``visionbench run`` for two installs of visionbench, side by side.

``fixed_cost_bench.py`` measures visionbench against a bare SDK script; its ratio moves with the bare script's figure
between sessions. To tell whether a change made visionbench itself dearer, run the same requests through two
interpreters that have different versions installed (say, a worktree of an older commit with its own venv), on one
emulator and dataset, interleaved, and compare their CPU per request (from ``n_mid`` to ``n_large`` requests):

    git worktree add /tmp/old REV && python3 -m venv /tmp/old/.venv && /tmp/old/.venv/bin/pip install -e /tmp/old
    python benchmarks/ab_cost_bench.py /tmp/old/.venv/bin/python .venv/bin/python [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def cpu(cmd: list[str]) -> float:
    """User + system CPU seconds of one process."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs=2, metavar="PYTHON", help="two interpreters, each with visionbench installed")
    parser.add_argument("--mid", type=int, default=300, help="requests of the smaller run (default 300)")
    parser.add_argument("--large", type=int, default=2400, help="requests of the larger run (default 2400)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; each figure is the median (default 4)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import emulator_process, make_dataset, write_config, write_profiles

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        dataset = make_dataset(tmp / "data", args.large)
        strategies = [{"name": "concurrent", "max_concurrency": 8}]
        # an install that asks before a run of over 1,000 requests takes --yes; an older one knows no such flag
        help_texts = [subprocess.run([p, "-m", "visionbench.cli", "run", "-h"], capture_output=True, text=True).stdout
                      for p in args.pythons]  # fmt: skip
        asks = ["--yes" in text for text in help_texts]
        with emulator_process(dataset, write_profiles(tmp / "zero.yaml", base_s=0.0)) as url:
            commands = {}
            for n in (args.mid, args.large):
                config = write_config(tmp / f"c{n}.yaml", dataset, url, strategies, limit=n)
                for who, python in enumerate(args.pythons):
                    results, cache = tmp / f"r{who}", tmp / f"c{who}"
                    cmd = [python, "-m", "visionbench.cli", "run", str(config), "--results", str(results)]
                    cmd += ["--cache-dir", str(cache), "--quiet"] + (["--yes"] if asks[who] else [])
                    cpu(cmd)  # warm-up: the cache, .pyc files
                    commands[who, n] = cmd
            got: dict[tuple[int, int], list[float]] = {key: [] for key in commands}
            for i in range(args.rounds):  # interleaved, order alternating, so drift hits both alike
                for key in list(commands)[:: 1 if i % 2 == 0 else -1]:
                    got[key].append(cpu(commands[key]))
    median = {key: statistics.median(values) for key, values in got.items()}
    for who, python in enumerate(args.pythons):
        per_request = (median[who, args.large] - median[who, args.mid]) / (args.large - args.mid)
        print(f"{python}: {per_request * 1000:.3f} ms CPU per request ({args.mid} to {args.large} requests)")


if __name__ == "__main__":
    main()
