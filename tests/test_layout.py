"""The package's layering holds: no two finser modules import each other, through any chain (deferred imports
inside functions included), so each reads and tests on its own."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "finser"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def finser_imports(path: Path, modules: set[str]) -> set[str]:
    """The finser modules ``path`` imports anywhere in its body (``from finser.models import ser`` counts ser)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in imported if name in modules} - {module_name(path)}


def test_no_finser_module_imports_itself_through_another() -> None:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: finser_imports(path, set(paths)) - {"finser"} for name, path in paths.items()}
    cycles = []

    def visit(name: str, chain: list[str]) -> None:
        for imported in graph[name]:
            if imported in chain:
                cycles.append(" → ".join([*chain[chain.index(imported) :], imported]))
            elif len(chain) < len(graph):
                visit(imported, [*chain, imported])

    for name in graph:
        visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
