"""The package's import graph: no cycles, and no module importing from a layer above its own (see README)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "framework": "visionbench",
    "providers": "visionbench.providers",
    "strategies": "visionbench.strategies",
    "scorers": "visionbench.scorers",
}

README = ROOT / "README.md"


def table() -> dict[str, tuple[set[str], set[str]]]:
    """The README's package table: each package's (packages it may import, modules it holds), short names as
    written there (``data`` for ``visionbench.data``; ``all of the above`` for every package above the row)."""
    text = README.read_text(encoding="utf-8")
    rows = text[text.index("| package | imports | modules |") :].split("\n\n", 1)[0].splitlines()[2:]
    out: dict[str, tuple[set[str], set[str]]] = {}
    for row in rows:
        package, allowed, mods = (cell.strip() for cell in row.strip("|").split("|")[:3])
        name = package.strip("`")
        if allowed == "all of the above":
            may = set(out)
        else:
            may = {_full(a.strip().strip("`")) for a in allowed.split(",") if a.strip()}
        out[name] = (may, {m.strip().strip("`") for m in mods.split(",")})
    return out


def _full(short: str) -> str:
    return short if short.startswith("visionbench") else f"visionbench.{short}"


TABLE = table()


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


def package_of(module: str) -> str:
    """The table's package that holds ``module``: the longest row name that is the module or a parent of it,
    ``visionbench`` for the plugin API's top-level modules."""
    if module in TABLE:
        return module
    parent = module.rpartition(".")[0]
    if parent not in TABLE:
        raise AssertionError(f"{module} is in no package of the README's table (Layout, for contributors)")
    return parent


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in edges.items():
        package = package_of(module)
        for target in targets:
            other = package_of(target)
            if other != package and other not in TABLE[package][0]:
                out.append(f"{module} ({package}) imports {target} ({other}), which the table does not allow")
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


def test_no_module_imports_from_a_package_its_row_does_not_name():
    assert violations(graph()) == []


def test_the_readme_table_names_every_module_and_no_other():
    found: dict[str, set[str]] = {name: set() for name in TABLE}
    for module in modules():
        found[package_of(module)].add(module.rpartition(".")[2] if module != package_of(module) else module)
    for package, (_, named) in TABLE.items():
        held = {m for m in found[package] if m != package}
        if package == "visionbench":
            held -= {"cli", "visionbench"}  # cli has a row of its own; the package's __init__ is its version
        elif package == "visionbench.cli":
            held = {"cli"} if "visionbench.cli" in modules() else set()
        assert held == named, (
            f"{package}: the README names {sorted(named - held)} that are not there, "
            f"and leaves out {sorted(held - named)}"
        )


def test_one_module_of_run_knows_the_emulator():
    knows = {m for m, targets in graph().items() if m.startswith("visionbench.run.") and _emulator(targets)}
    assert knows == {"visionbench.run.emulated"}


def _emulator(targets: set[str]) -> bool:
    return any(t == "visionbench.emulator" or t.startswith("visionbench.emulator.") for t in targets)


def test_strategies_see_only_the_plugin_api():
    for module, targets in graph().items():
        if module.startswith("visionbench.strategies"):
            assert {package_of(t) for t in targets} <= {"visionbench", "visionbench.strategies"}, module


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


def test_the_layer_check_catches_an_upward_and_a_sideways_import():
    edges = {
        "visionbench.types": {"visionbench.run.cell"},
        "visionbench.strategies.x": {"visionbench.run.calling"},
        "visionbench.data.dataset": {"visionbench.services.pricing"},
        "visionbench.report.charts": {"visionbench.results.bundle"},
    }
    assert violations(edges) == [
        "visionbench.data.dataset (visionbench.data) imports visionbench.services.pricing (visionbench.services), "
        "which the table does not allow",
        "visionbench.strategies.x (visionbench.strategies) imports visionbench.run.calling (visionbench.run), "
        "which the table does not allow",
        "visionbench.types (visionbench) imports visionbench.run.cell (visionbench.run), "
        "which the table does not allow",
    ]
