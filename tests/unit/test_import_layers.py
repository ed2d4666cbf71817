"""The layering of the services' area, read from the source (docs/ARCHITECTURE.md).

No import cycles through these modules and packages; the hub does not import the
planner, hardware does not import the hub or the catalog; the frontends go through
``localchat.services``; no localchat import hides inside a function; nothing here
compares a model format's name (the formats live in ``engine/`` and the planner).
``TYPE_CHECKING`` imports are annotations only and do not count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "localchat"

# The modules this layer owns (issue 16's services step).
OWNED = (
    "localchat", "localchat.api", "localchat.services*", "localchat.engine",
    "localchat.engine.registry", "localchat.engine.gguf_*", "localchat.engine.remote_plugin",
    "localchat.engine.awq*", "localchat.cli*", "localchat.tui.services", "localchat.store*",
    "localchat.hub*", "localchat.reference", "localchat.catalog*", "localchat.settings",
    "localchat.hardware.detect", "localchat.planner.sources", "localchat.planner.awq*",
    "localchat.benchmark*", "localchat.history*", "localchat.formats.resolve",
)  # fmt: skip
NOT_OWNED = ("localchat.cli.serve_cmd", "localchat.cli.worker_cmd", "localchat.hub.ranges")
FRONTENDS = ("localchat.cli*", "localchat.tui.services", "localchat.api")
FRONTEND_MAY_IMPORT = (
    "localchat", "localchat.services*", "localchat.types", "localchat.protocol*",
    "localchat.errors", "localchat.units", "localchat.paths", "localchat.settings",
    "localchat.errorlog", "localchat.cli*", "localchat.tui",
)  # fmt: skip
FORMAT_NAMES = {"gguf", "awq"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    in_function: bool
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(name, pattern) for pattern in patterns)


def owned(name: str) -> bool:
    return matches(name, OWNED) and name not in NOT_OWNED


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.depth, self.edges = 0, list[Edge]()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
        self._add(node, [f"{base}.{alias.name}" for alias in node.names])

    def _add(self, node: ast.stmt, names: list[str]) -> None:
        for name in names:
            target = resolve(name) if name.startswith("localchat") else None
            if target and target != self.module:
                self.edges.append(Edge(self.module, target, self.depth > 0, node.lineno))


def edges() -> Iterator[Edge]:
    for name, path in MODULES.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text()))
        yield from visitor.edges


EDGES = list(edges())


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_cycle_runs_through_this_layer() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in EDGES:
        graph[edge.source].add(edge.target)
    involved = [c for c in cycles(graph) if any(owned(m) for m in c)]
    assert involved == []


def test_no_package_cycle_runs_through_this_layers_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in EDGES:
        if package_of(edge.source) != package_of(edge.target):
            graph[package_of(edge.source)].add(package_of(edge.target))
    mine = {
        "localchat.services", "localchat.hub", "localchat.store", "localchat.catalog",
        "localchat.history", "localchat.benchmark", "localchat.cli", "localchat.api",
        "localchat.reference", "localchat.settings",
    }  # fmt: skip
    assert [c for c in cycles(graph) if c & mine] == []


@pytest.mark.parametrize(
    "source, forbidden",
    [
        ("localchat.hub", ("localchat.planner", "localchat.hardware", "localchat.engine")),
        ("localchat.hardware", ("localchat.hub", "localchat.catalog", "localchat.services")),
        ("localchat.store", ("localchat.hub", "localchat.engine", "localchat.planner")),
        ("localchat.planner", ("localchat.engine", "localchat.services")),
    ],
)
def test_lower_layers_do_not_import_upwards(source: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        e for e in EDGES if package_of(e.source) == source and package_of(e.target) in forbidden
    ]
    assert wrong == []


def test_frontends_go_through_the_services() -> None:
    wrong = [
        (e.source, e.target)
        for e in EDGES
        if owned(e.source) and matches(e.source, FRONTENDS)
        if not matches(e.target, FRONTEND_MAY_IMPORT)
    ]
    assert wrong == []


def test_no_localchat_import_hides_in_a_function() -> None:
    hidden = [(e.source, e.line, e.target) for e in EDGES if e.in_function and owned(e.source)]
    assert hidden == []


def test_no_format_name_is_compared_outside_the_formats_and_the_planner() -> None:
    def is_name(node: ast.expr) -> bool:
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return any(is_name(element) for element in node.elts)
        return isinstance(node, ast.Constant) and str(node.value).lower() in FORMAT_NAMES

    found = []
    for name, path in MODULES.items():
        if not owned(name) or name.startswith(("localchat.engine", "localchat.planner")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                is_name(side) for side in (node.left, *node.comparators)
            ):
                found.append(f"{name}:{node.lineno}")
    assert found == []
