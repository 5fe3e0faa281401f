"""Run mypy over the plugin API and the built-in plugins: ``python tools/typecheck.py`` (CI runs it).

The folders are not named as the packages they hold (``framework/`` is ``visionbench``, ``providers/`` is
``visionbench.providers``: ``pyproject.toml``'s ``package-dir``), and mypy finds modules by folder name, so
this builds a tree of links shaped as the import names (``build/typecheck/visionbench``), runs mypy on it with
the ``[tool.mypy]`` settings, and prints each error at its file in the repository. Extra arguments go to mypy
(``python tools/typecheck.py --strict``); ``--all`` checks every module of ``visionbench``, not only these.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
#: What CI holds to zero errors: the plugin API (the top-level modules but the CLI), and the built-in plugins.
CHECKED = [
    "visionbench.clock",
    "visionbench.errors",
    "visionbench.hookspecs",
    "visionbench.preprocessing",
    "visionbench.provider",
    "visionbench.secrets",
    "visionbench.spec",
    "visionbench.strategy",
    "visionbench.scorer",
    "visionbench.toolkit",
    "visionbench.types",
    "visionbench.providers",
    "visionbench.strategies",
    "visionbench.scorers",
]


def build_tree() -> Path:
    """``build/typecheck/visionbench``: links to ``framework/``'s entries, with the built-in plugins' folders."""
    package = TREE / "visionbench"
    if TREE.exists():
        shutil.rmtree(TREE)
    package.mkdir(parents=True)
    for entry in (ROOT / "framework").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for sub in ("providers", "strategies", "scorers"):
        (package / sub).symlink_to(ROOT / sub)
    return TREE


def main(argv: list[str]) -> int:
    tree = build_tree()
    everything = "--all" in argv
    args = [a for a in argv if a != "--all"]
    targets = ["-p", "visionbench"] if everything else [arg for m in CHECKED for arg in ("-p", m)]
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / "build" / "mypy_cache")]
    command = [sys.executable, "-m", "mypy", *config, *args, *targets]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    links = {
        "visionbench/providers/": "providers/",
        "visionbench/strategies/": "strategies/",
        "visionbench/scorers/": "scorers/",
        "visionbench/": "framework/",
    }
    for line in (done.stdout + done.stderr).splitlines():
        for link, real in links.items():
            if line.startswith(link):
                line = real + line.removeprefix(link)
                break
        print(line)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
