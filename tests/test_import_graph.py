"""The modules of ``ventryx/`` import each other without a cycle, function-local imports included.

Every module is parsed with ``ast``; every ``import`` and ``from ... import`` anywhere in it
counts (at the top, inside functions, under ``try``), because a late import only hides a cycle
from Python, not from the design. Imports under ``if TYPE_CHECKING:`` are left out: they never
run, and annotations may name any layer. ``from pkg import name`` counts as an edge to
``pkg.name`` when that is a module, else to ``pkg``; a package's ``__init__`` is a module of its
own, so a submodule importing its parent package's ``__init__`` is an edge like any other.

Layers are checked too: each subpackage (``ventryx._bulk``, ``ventryx.resources``,
``ventryx._cli``, ``ventryx.testing``) collapsed to one node, the top-level modules kept apart,
``ventryx/__init__`` (the lazy public facade, which may name any layer) left out. A module of a
lower layer that imports the client (``_bulk._blocking`` building an ``AsyncVentryx``) is a
layer cycle: client -> resources -> bulk -> client.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ventryx"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ``ventryx`` it imports (at run time, anywhere in its body)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names
                ]
            edges.update(t for t in targets if t in paths and t != name)
        graph[name] = set(edges)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "ventryx._pipeline" in graph["ventryx._client"]
    # a function-local import is an edge
    assert "ventryx._bulk._run" in graph["ventryx.resources.events"]


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def layer_graph() -> dict[str, set[str]]:
    layers: dict[str, set[str]] = {}
    for module, edges in import_graph().items():
        if module == "ventryx":
            continue
        here = layer_of(module)
        targets = {layer_of(e) for e in edges if e != "ventryx"} - {here}
        layers.setdefault(here, set()).update(targets)
    return layers


def test_no_import_cycle_between_layers() -> None:
    layers = layer_graph()
    assert "ventryx._bulk" in layers["ventryx.resources"]  # emit_many's local import
    cycle = find_cycle(layers)
    assert cycle is None, "layer cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set[str]()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
