"""The house: no import cycles (typing-only and function-local imports included), the top level in two
groups, and each tool's name written in one package only. import-linter holds the layers (.ci/run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp

from retab_mcp.tools.registry import catalog

PACKAGE = Path(__file__).parents[1] / "server" / "retab_mcp"


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("retab_mcp", cache_dir=None)  # every import: typing-only and in functions too
    cycles: list[str] = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("retab_mcp") and (chain := graph.find_shortest_chain(imported, module)):
                cycles.append(" -> ".join((module, *chain)))
    assert not cycles, cycles


def test_the_top_level_holds_at_most_eight_modules_and_the_rest_in_packages() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules
    assert {"base", "entry"} <= {p.name for p in PACKAGE.iterdir() if p.is_dir()}


def _strings(source: str) -> list[str]:
    """The string constants of a module, less its docstrings (written for people, not sent to a model)."""
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_each_tool_name_is_written_in_the_tools_package_only() -> None:
    """Views, reads and the rest quote a tool through tools/names.py, never as a string of their own."""
    names = [spec.name for spec in catalog()]
    written: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "tools":
            continue
        for text in _strings(path.read_text()):
            written += [f"{path.relative_to(PACKAGE)}: {name}" for name in names if re.search(rf"\b{name}\b", text)]
    assert not written, written
