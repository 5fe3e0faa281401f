"""The package's import graph: no cycles, and no module importing from a layer above its own (see README)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"framework": "visionbench", "providers": "visionbench.providers", "strategies": "visionbench.strategies"}

#: 1 plugin API, 2 machinery, 3 orchestration, 4 faces. A module may import from its own layer or below.
LAYERS = {
    1: "visionbench hookspecs types errors spec provider strategy preprocessing secrets tokens",
    2: "calling preprocess dataset pricing lifecycle scoring stats significance bundle jobs answers plugins faces"
    " sweep limits adaptive_limit jpeg_turbo records clock",
    3: "cell config plan runner resume planning",
    4: "cli report charts html_report compare cellnames concurrency_charts figures termtable gallery plan_report",
}
LAYER_OF = {f"visionbench.{m}" if m != "visionbench" else m: n for n, ms in LAYERS.items() for m in ms.split()}
#: Beside the layers: what each may import from visionbench (besides its own package).
BESIDE = {"visionbench.emulator": 2, "visionbench.providers": 2, "visionbench.strategies": 1}
#: Which of them the layers may import, from which layer up: orchestration starts the emulator. Providers and
#: strategies are reached only through entry points, as third-party plugins are.
STARTED_FROM = {"visionbench.emulator": 3}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """visionbench modules ``path`` imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def home(module: str) -> tuple[str, int]:
    """The module's group (a layer, or what it sits beside) and the highest layer it may import from."""
    for prefix, top in BESIDE.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, top
    if module not in LAYER_OF:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")
    return "layer", LAYER_OF[module]


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in edges.items():
        group, top = home(module)
        for target in targets:
            target_group, target_layer = home(target)
            if target_group == group and group != "layer":
                continue  # inside the emulator, the providers or the strategies
            if target_group != "layer":
                if group == "layer" and top >= STARTED_FROM.get(target_group, 99):
                    continue
                out.append(f"{module} imports {target}, which sits beside the layers")
            elif target_layer > top:
                out.append(f"{module} (layer {top}) imports {target} (layer {target_layer})")
    return sorted(out)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(graph()) == []


def test_no_module_imports_from_a_layer_above_its_own():
    assert violations(graph()) == []


def test_strategies_see_only_the_plugin_api():
    for module, targets in graph().items():
        if module.startswith("visionbench.strategies"):
            assert "visionbench.cell" not in targets, module


def test_the_emulator_imports_no_private_name_of_a_provider():
    for name, path in modules().items():
        if not name.startswith("visionbench.emulator"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("visionbench.providers"):
                raise AssertionError(f"{name} imports from {node.module}")
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("visionbench.providers") for a in node.names), name


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert cycles(edges) == expected


def test_the_layer_check_catches_an_upward_import():
    edges = {"visionbench.types": {"visionbench.cell"}, "visionbench.strategies.x": {"visionbench.calling"}}
    assert violations(edges) == [
        "visionbench.strategies.x (layer 1) imports visionbench.calling (layer 2)",
        "visionbench.types (layer 1) imports visionbench.cell (layer 3)",
    ]
