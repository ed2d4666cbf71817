"""The TUI's boundaries, read from its source: what it imports, and no silenced type errors.

Screens talk to the app with messages and get what they need in their constructors;
everything below the TUI is reached through its door, ``localchat.tui.services``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import localchat.tui

TUI = Path(localchat.tui.__file__).parent
DOOR = TUI / "services.py"
# Core modules (docs/ARCHITECTURE.md).
ALLOWED = {
    "localchat.types",
    "localchat.errors",
    "localchat.errorlog",
    "localchat.units",
    "localchat.paths",
    "localchat.settings",
}


def tui_sources() -> list[Path]:
    return sorted(path for path in TUI.rglob("*.py") if path != DOOR)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top, in functions or under TYPE_CHECKING."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            if node.module == "localchat":  # from localchat import api
                modules.update(f"localchat.{alias.name}" for alias in node.names)
    return modules


def test_the_tui_imports_nothing_below_its_door() -> None:
    deeper = {
        f"{path.relative_to(TUI)}: {module}"
        for path in tui_sources()
        for module in imported_modules(path)
        if module.startswith("localchat.")
        and not module.startswith("localchat.tui")
        and module not in ALLOWED
    }
    assert not deeper, sorted(deeper)


def test_screens_and_widgets_do_not_name_the_app() -> None:
    for folder in ("screens", "widgets"):
        for path in sorted((TUI / folder).glob("*.py")):
            assert "localchat.tui.app" not in imported_modules(path), path.name


def test_no_silenced_type_errors_in_the_tui() -> None:
    silenced = [
        f"{path.relative_to(TUI)}:{number}"
        for path in tui_sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line
    ]
    assert not silenced, silenced
