"""The loaded-model panel, like ``ollama ps``: model, quant, layers, context, memory, load time."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from localchat.tui.services import format_size


def loaded_rows(model: Any) -> list[tuple[str, str]]:
    """(field, value) rows for a loaded model."""
    if model is None:
        return [("model", "none loaded (F2 to pick one)")]
    summary: dict[str, Any] = dict(getattr(model, "plan_summary", None) or {})
    rows = [
        ("model", str(model.name)),
        ("quant", str(getattr(model, "quant", None) or "?")),
        ("file", _short_path(getattr(model, "path", None))),
        ("context", f"{int(getattr(model, 'n_ctx', 0)):,} tokens"),
        ("layers on GPU", _layers(summary)),
    ]
    for device, size in _memory(summary).items():
        rows.append((f"memory {device}", format_size(size)))
    if summary.get("load_s") is not None:
        rows.append(("load time", f"{float(summary['load_s']):.2f} s"))
    for note in summary.get("load_retries") or []:
        rows.append(("note", str(note)))
    return rows


def _short_path(path: object, width: int = 48) -> str:
    text = str(path) if path else "?"
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _layers(summary: dict[str, Any]) -> str:
    gpu = summary.get("n_gpu_layers")
    total = summary.get("n_layers")
    if gpu is None:
        return "?"
    if not gpu:
        return "0 (CPU only)"
    if total and gpu > total:
        return f"all {total} + output"
    return f"{gpu}/{total}" if total else str(gpu)


def _memory(summary: dict[str, Any]) -> dict[str, int]:
    devices = summary.get("devices")
    if isinstance(devices, list):  # the planner's plan: [{"device": "GPU0", "total": bytes}, ...]
        return {
            str(d.get("device", "?")): int(d.get("total", 0))
            for d in devices
            if isinstance(d, dict)
        }
    for key in ("memory", "memory_bytes", "memory_per_device", "device_bytes"):
        value = summary.get(key)
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}
    return {}


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
