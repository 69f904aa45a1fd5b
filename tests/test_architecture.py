"""The shape of the code: small modules and functions, no import circles, thin FUSE adapters.

The layering itself (engine never imports ddfs, FUSE or trio; engine.ondemand > rescue >
schedule > map; commands > live view | simulator | drawing) is written as import-linter
contracts in pyproject.toml and checked by ``make lint``; this test checks what those contracts
do not: cycles between single modules, and sizes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*ROOT.glob("engine/**/*.py"), *ROOT.glob("ddfs/**/*.py"), *ROOT.glob("bench/*.py")]
# filesystem parsers: one module per on-disk format, exempt from the module size rule
PARSERS = {
    f"engine/{layer}/{fs}.py"
    for layer in ("metadata", "damage")
    for fs in ("ext", "ntfs", "fat", "exfat")
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_modules_are_small() -> None:
    big = {
        _rel(p): n
        for p in SOURCES
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES and _rel(p) not in PARSERS
    }
    assert big == {}


def test_functions_are_small() -> None:
    long = {}
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{_rel(p)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_every_module_says_its_role() -> None:
    missing = [_rel(p) for p in SOURCES if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return found


def test_no_import_circles() -> None:
    graph = grimp.build_graph("engine", "ddfs")
    assert _cycles(graph, set(graph.modules)) == []


def test_engine_never_imports_the_views() -> None:
    graph = grimp.build_graph("engine", "ddfs", include_external_packages=True)
    for outside in ("ddfs", "pyfuse3", "trio"):
        assert graph.find_shortest_chain("engine", outside, as_packages=True) is None


def test_fuse_adapters_are_thin() -> None:
    """The pyfuse3 modules translate requests and errors; the decisions are in pure modules
    (the live view's model and reader, the simulator's disk model), tested without mounting."""
    for adapter, banned in (
        ("ddfs/live/fusefs.py", ("engine",)),
        ("ddfs/simulate/fusefs.py", ("engine.rescue", "engine.schedule", "engine.ondemand")),
    ):
        source = (ROOT / adapter).read_text()
        tree = ast.parse(source)
        doc_end = tree.body[0].end_lineno or 0  # after the module docstring
        assert source.count("\n") - doc_end <= 300, adapter
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not [m for m in imported if m.startswith(banned)], adapter
