"""The project's modules import one another without a circle, and the engines package stays in small files.

The graph is built from the source, not by importing it: an edge A -> B means that importing A executes
B's module body (a top-level ``import``/``from ... import``, relative or absolute, also inside top-level
``try``/``if``/``with``/class bodies). Imports inside functions run later and do not count; nor do
``if TYPE_CHECKING:`` blocks, which never run. Importing ``a.b.c`` first runs ``a`` and ``a.b``, so an edge to a
module is also an edge to each of its packages, except the packages that enclose the importer itself (they are
already being initialised when it runs, and only their own top-level imports can close a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("b2b_train", "b2b_stream")
ENGINES_MAX_LINES = 400


def _module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_time_nodes(body: list[ast.stmt]):
    """Import statements that run when the module body runs (not in functions, not under TYPE_CHECKING)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.ClassDef):
            yield from _import_time_nodes(node.body)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            yield from _import_time_nodes(node.body)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
            yield from _import_time_nodes(node.orelse)
            yield from _import_time_nodes(node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
            yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(getattr(node, "orelse", []))


def _resolve_from(module: str, node: ast.ImportFrom, files: dict[str, Path]) -> str:
    if node.level == 0:
        return node.module or ""
    # The package a relative import is relative to: the module itself when it is a package's __init__.
    base = module.split(".") if _is_package(module, files) else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.stmt, files: dict[str, Path]) -> set[str]:
    """Project modules whose bodies ``node`` runs directly (before adding their packages)."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            found.add(alias.name)
    else:
        source = _resolve_from(module, node, files)
        for alias in node.names:
            candidate = f"{source}.{alias.name}"
            if candidate in files:  # ``from pkg import submodule`` runs the submodule
                found.add(candidate)
            else:  # a name defined by ``source``'s body, which must have run to the end
                found.add(source)
    return {name for name in found if name in files or any(name.startswith(p + ".") for p in PACKAGES)}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    files = _module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own_packages = set(_ancestors(module))
        if _is_package(module, files):
            own_packages.add(module)
        for node in _import_time_nodes(tree.body):
            for target in _targets(module, node, files):
                for name in [*_ancestors(target), target]:
                    if name in files and name != module and (name not in own_packages or name == target):
                        graph[module].add(name)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
    return components


def cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through the component, as module -> module -> ... -> first module."""
    members = set(component)
    start = component[0]
    # Breadth-first from start back to start, within the component: the shortest circle through it.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no circle through {start}")


def test_no_import_cycle():
    graph = import_graph()
    circles = [" -> ".join(cycle_in(c, graph)) for c in strongly_connected(graph)]
    assert not circles, "import circle(s) at module import time:\n  " + "\n  ".join(circles)


def test_graph_sees_relative_submodule_and_package_edges():
    graph = import_graph()
    # ``from . import io as dio`` in data.frames runs the submodule, not just the package.
    assert "b2b_train.data.io" in graph["b2b_train.data.frames"]
    # data.sets imports data.frames, whose package (its own) is not an edge of its own.
    assert "b2b_train.data.frames" in graph["b2b_train.data.sets"]
    assert "b2b_train.data" not in graph["b2b_train.data.sets"]
    # The package __init__ runs each submodule it imports.
    assert "b2b_train.data.curriculum" in graph["b2b_train.data"]
    # A name taken from the package itself needs its __init__ to have run to the end: an edge to it.
    files = _module_files()
    (node,) = ast.parse("from . import io, FrameSet").body
    assert _targets("b2b_train.data.frames", node, files) == {"b2b_train.data.io", "b2b_train.data"}


def test_finder_names_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    (component,) = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert cycle_in(component, graph) == ["a", "b", "c", "a"]


def test_lazy_and_type_checking_imports_do_not_count():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import b2b_train.losses\n"
        "if TYPE_CHECKING:\n    import b2b_train.trainer\n"
        "try:\n    import b2b_train.metrics\nexcept ImportError:\n    pass\n"
        "def f():\n    import b2b_train.evaluate\n"
    )
    names = {alias.name for node in _import_time_nodes(tree.body) for alias in node.names}
    assert names == {"TYPE_CHECKING", "b2b_train.losses", "b2b_train.metrics"}


def test_engine_files_are_small():
    too_long = {
        path.name: n
        for path in sorted((ROOT / "b2b_stream" / "engines").glob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) >= ENGINES_MAX_LINES
    }
    assert not too_long, f"files under b2b_stream/engines/ must be under {ENGINES_MAX_LINES} lines: {too_long}"
