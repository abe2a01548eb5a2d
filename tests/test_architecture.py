"""docs/ARCHITECTURE.md's layer table is the package's import graph: every package it lists, with
exactly the `pave` packages it imports, each one in a row above it (dependencies point down)."""

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pave"


def unit(path: Path) -> str:
    """The top-level package or module of ``pave`` a source file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def import_graph() -> dict[str, set[str]]:
    """unit -> the other units its files import (``pave.__version__`` and the like left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    units = {unit(f) for f in PACKAGE.rglob("*.py")} - {"__init__"}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        names = []
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names += [node.module] if node.module != "pave" else [f"pave.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
        imported = {n.split(".")[1] for n in names if n.startswith("pave.")}
        graph[unit(path)] |= (imported & units) - {unit(path)}
    return {u: graph[u] for u in units}


def layer_table() -> list[tuple[list[str], set[str]]]:
    """(packages of a row, the `pave` packages it says it knows about), top row first."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `pave."):
            continue
        first, _, knows = (cell.strip() for cell in line.strip("|").split(" | "))
        packages = re.findall(r"`pave\.(\w+)`", first)
        mentioned = {m.split(".")[0] for m in re.findall(r"`([\w.]+)`", knows)}
        rows.append((packages, mentioned))
    return rows


def test_the_layer_table_lists_every_package_once():
    listed = [p for packages, _ in layer_table() for p in packages]
    assert sorted(listed) == sorted(set(listed)), "a package is listed twice"
    assert set(listed) == set(import_graph()), "the table and the source have different packages"


def test_the_layer_table_is_the_import_graph():
    graph = import_graph()
    for packages, mentioned in layer_table():
        for package in packages:
            documented = mentioned & set(graph)
            assert graph[package] == documented, (
                f"pave.{package} imports {sorted(graph[package])}; ARCHITECTURE.md says {sorted(documented)}"
            )


def test_dependencies_point_downward():
    above: set[str] = set()
    graph = import_graph()
    for packages, _ in layer_table():
        for package in packages:
            upward = graph[package] - above
            assert not upward, f"pave.{package} imports {sorted(upward)}, listed below it"
        above |= set(packages)
