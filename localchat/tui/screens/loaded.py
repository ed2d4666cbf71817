"""The loaded-model panel, like ``ollama ps``: model, quant, layers, context, memory, load time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from localchat.planner.plan import gpu_layers_text
from localchat.tui.services import format_size

if TYPE_CHECKING:
    from localchat.api import LoadedModel


def loaded_rows(model: LoadedModel | None) -> list[tuple[str, str]]:
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


class LoadedModelScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f5", "dismiss", "Close"),
        Binding("u", "unload", "Unload"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="loaded-box"):
            yield Label("Loaded model", classes="dialog-title")
            yield DataTable(show_header=False, cursor_type="none", id="loaded-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("field", "value")
        for field, value in loaded_rows(self.app.model):  # type: ignore[attr-defined]
            table.add_row(field, value)

    def action_unload(self) -> None:
        self.app.action_unload()  # type: ignore[attr-defined]
        self.dismiss()
