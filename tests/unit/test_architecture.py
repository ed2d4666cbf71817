"""The architecture as the imports say it (docs/ARCHITECTURE.md), checked on the whole tree.

- the import contracts in pyproject.toml hold (import-linter: the layers, and frontends
  reaching the rest only through ``localchat.services``);
- no import cycle between modules, nor between localchat's packages (``TYPE_CHECKING``
  imports are annotations and do not count);
- a localchat import inside a function is for a heavy or optional dependency only (each
  allowed target below says which);
- no model-format name is compared outside the backends (``engine/``) and the planner;
- the type checker (mypy, configured in pyproject.toml: strict on the plain types, the
  backend interface, the registry, the wire protocol and the services) passes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "localchat"

# In-function imports allowed, by the module imported, and why.
HEAVY_TARGETS = {
    "localchat.llamacpp": "loads llama.cpp's native libraries (llama_cpp)",
    "localchat.engine.llama": "loads llama.cpp's native libraries (llama_cpp)",
    "localchat.engine.awq": "torch, transformers and gptqmodel (the optional awq extra)",
    "localchat.server": "starlette, uvicorn and sse-starlette: only `serve` needs them",
    "localchat.tui.app": "textual: only the app needs it",
    "localchat.protocol": "pydantic models: `ask --local` and `--help` never need them",
}
FORMAT_NAMES = {"gguf", "awq"}
FORMAT_OWNERS = ("localchat.engine", "localchat.planner")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_type_checker_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def _graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("localchat", exclude_type_checking_imports=True)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Components with more than one node (Tarjan), i.e. the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_around_a_cycle() -> None:
    assert strongly_connected(_graph()) == []


def test_no_package_imports_itself_around_a_cycle() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for source, targets in _graph().items():
        for target in targets:
            here, there = ".".join(source.split(".")[:2]), ".".join(target.split(".")[:2])
            if here != there:
                packages[here].add(there)
    assert strongly_connected(packages) == []


def in_function_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every localchat import inside a function."""

    class Visitor(ast.NodeVisitor):
        def __init__(self) -> None:
            self.depth = 0
            self.found: list[tuple[int, str]] = []

        def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if self.depth and (node.module or "").startswith("localchat"):
                self.found.append((node.lineno, node.module or ""))

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if self.depth and alias.name.startswith("localchat"):
                    self.found.append((node.lineno, alias.name))

    visitor = Visitor()
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    yield from visitor.found


def test_imports_inside_functions_are_for_heavy_dependencies_only() -> None:
    def heavy(target: str) -> bool:
        return any(target == t or target.startswith(t + ".") for t in HEAVY_TARGETS)

    hidden = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        for line, target in in_function_imports(path)
        if not heavy(target)
    ]
    assert hidden == []


def test_no_format_name_is_compared_outside_the_backends_and_the_planner() -> None:
    def is_format_name(node: ast.expr) -> bool:
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return any(is_format_name(element) for element in node.elts)
        return isinstance(node, ast.Constant) and str(node.value).lower() in FORMAT_NAMES

    found = []
    for name, path in MODULES.items():
        if name.startswith(FORMAT_OWNERS):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            sides = (node.left, *node.comparators) if isinstance(node, ast.Compare) else ()
            if any(is_format_name(side) for side in sides):
                found.append(f"{name}:{node.lineno}")
    assert found == []
