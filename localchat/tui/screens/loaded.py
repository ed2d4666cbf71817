"""The loaded-model panel, like ``ollama ps``: model, quant, layers, context, memory, load time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from localchat.tui.model import ChatModel
from localchat.tui.services import format_size


def loaded_rows(model: ChatModel | None) -> list[tuple[str, str]]:
    """(field, value) rows for a loaded model: what it is, where it runs, what it holds."""
    if model is None:
        return [("model", "none loaded (F2 to pick one)")]
    summary = model.plan_summary  # the plan, then what the backend really loaded
    rows = [
        ("model", model.name),
        ("quant", model.quant or "?"),
        ("engine", model.engine_label),
        ("file", _short_path(model.path)),
        ("context", f"{model.n_ctx:,} tokens"),
        ("layers on GPU", _layers(summary)),
    ]
    for device in summary.get("devices") or []:  # the planner's [{"device", "total"...}]
        rows.append((f"memory {device['device']}", format_size(device["total"])))
    if summary.get("load_s") is not None:
        rows.append(("load time", f"{float(summary['load_s']):.2f} s"))
    rows += [("note", str(note)) for note in summary.get("load_retries") or []]
    return rows


def _short_path(path: Path | None, width: int = 48) -> str:
    text = str(path) if path else "?"
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _layers(summary: dict[str, Any]) -> str:
    gpu = summary.get("n_gpu_layers")
    total = summary.get("n_layers")
    if gpu is None:
        return "?"
    if not gpu:
        return "0 (CPU only)"
    return gpu_layers_text(gpu, total) if total else str(gpu)


def gpu_layers_text(n_gpu_layers: int, n_layers: int) -> str:
    """``12/33``: counted as llama.cpp counts them, ``n_layers`` blocks + the output layer
    (the planner's ``gpu_layers_text``, which the CLI shows; services offers no door to
    it yet)."""
    return f"{n_gpu_layers}/{n_layers + 1}"


class LoadedModelScreen(ModalScreen[bool]):
    """What is loaded; dismisses with True when the user asks to unload it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f5", "close", "Close"),
        Binding("u", "unload", "Unload"),
    ]

    def __init__(self, model: ChatModel | None) -> None:
        super().__init__()
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="loaded-box"):
            yield Label("Loaded model", classes="dialog-title")
            yield DataTable(show_header=False, cursor_type="none", id="loaded-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("field", "value")
        for field, value in loaded_rows(self.model):
            table.add_row(field, value)

    def action_close(self) -> None:
        self.dismiss(False)

    def action_unload(self) -> None:
        self.dismiss(True)
