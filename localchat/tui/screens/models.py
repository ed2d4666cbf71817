"""Models: the catalog and typed-in hub repos, each quant with size, fit badge and disk state.

Enter loads the selected model (downloading it first when needed), ``p`` pulls it with a
progress bar (Esc cancels; pulling again resumes), ``delete`` removes its files.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from localchat.tui import services
from localchat.tui.screens.dialogs import ConfirmDialog
from localchat.tui.services import ModelRow, PullCancelled


class ModelsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back / cancel pull"),
        Binding("enter", "load", "Load", show=True),
        Binding("p", "pull", "Pull"),
        Binding("delete,ctrl+d", "remove", "Delete files"),
        Binding("ctrl+f", "focus_filter", "Filter"),
    ]

    class RowsReady(Message):
        def __init__(self, rows: list[ModelRow], *, replace: bool) -> None:
            super().__init__()
            self.rows = rows
            self.replace = replace

    class Progress(Message):
        def __init__(self, event: Any) -> None:
            super().__init__()
            self.event = event

    class PullDone(Message):
        def __init__(self, key: str, error: BaseException | None) -> None:
            super().__init__()
            self.key = key
            self.error = error

    def __init__(self, *, rows_source: Any = None) -> None:
        super().__init__()
        self.rows: dict[str, ModelRow] = {}
        self.rows_source = rows_source or services.catalog_rows
        self.pulling: str | None = None
        self.cancel_pull = threading.Event()

    def compose(self) -> ComposeResult:
        yield Label("Models", classes="screen-title")
        yield Input(placeholder="Filter, or type owner/repo and press Enter", id="filter")
        with Horizontal(id="models-body"):
            yield DataTable(cursor_type="row", zebra_stripes=True, id="models-table")
            yield Static("Loading the catalog…", id="model-detail")
        with Vertical(id="pull-box"):
            yield Label("", id="pull-label")
            yield ProgressBar(total=100, show_eta=False, id="pull-bar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Model", key="name", width=20)
        table.add_column("Quant", key="quant", width=9)
        table.add_column("Size", key="size", width=9)
        table.add_column("Fit", key="fit", width=14)
        table.add_column("On disk", key="disk", width=7)
        self.query_one("#pull-box").display = False
        table.focus()
        self._fetch_rows(None)

    # ------------------------------------------------------------------ rows
    @work(thread=True, exclusive=True, group="rows", exit_on_error=False)
    def _fetch_rows(self, repo: str | None) -> None:
        try:
            rows = services.hub_rows(repo) if repo else self.rows_source()
        except Exception as exc:  # a broken catalog must not close the screen
            self.app.call_from_thread(self.app.report_error, exc, doing="reading the catalog")  # type: ignore[attr-defined]
            rows = []
        if repo and not rows:
            self.app.call_from_thread(
                self.notify,
                f"Could not list quants of {repo} (offline, or hub listing unavailable); "
                f"Enter loads {repo} anyway and picks a quant",
                timeout=8,
            )
            rows = [ModelRow(repo, repo, "auto", None, "typed-in hub repo")]
        self.post_message(self.RowsReady(rows, replace=repo is None))
        self._add_fits(rows, get_current_worker(), offline=repo is None)

    def _add_fits(self, rows: list[ModelRow], worker: Any, *, offline: bool) -> None:
        """Plan each row after the list is shown; post the badges in small batches."""
        pending = [row for row in rows if row.fit.badge == "unknown" and row.quant != "auto"]
        if not pending:
            return
        hardware = services.detect_hardware_or_none()
        if hardware is None:
            return
        batch: list[ModelRow] = []
        for row in pending:
            if worker.is_cancelled:
                return
            batch.append(services.with_fit(row, hardware, offline=offline))
            if len(batch) >= 8:
                self.post_message(self.RowsReady(batch, replace=False))
                batch = []
        if batch:
            self.post_message(self.RowsReady(batch, replace=False))

    def on_models_screen_rows_ready(self, event: RowsReady) -> None:
        if event.replace:
            self.rows = {}
        for row in event.rows:
            self.rows[row.key] = row
        self.show_rows(self.query_one("#filter", Input).value)

    def show_rows(self, text: str = "") -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        needle = text.strip().lower()
        for row in self.rows.values():
            if needle and needle not in row.key.lower() and needle not in row.description.lower():
                continue
            table.add_row(
                row.name,
                row.quant,
                services.format_size(row.size_bytes),
                row.fit.badge,
                "yes" if row.on_disk else "",
                key=row.key,
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.show_detail()

    def selected(self) -> ModelRow | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(str(key)) if key is not None else None

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        row = self.selected()
        detail = self.query_one("#model-detail", Static)
        if row is None:
            detail.update("No models match." if self.rows else "Loading the catalog…")
            return
        lines = [f"[b]{row.key}[/b]", row.description, ""]
        lines.append(f"size {services.format_size(row.size_bytes)} · fit: {row.fit.badge}")
        lines.append("on disk" if row.on_disk else "not downloaded (p pulls, Enter loads)")
        if row.fit.detail:
            lines += ["", row.fit.detail]
        detail.update("\n".join(_escape(line) if i else line for i, line in enumerate(lines)))

    @on(Input.Changed, "#filter")
    def on_filter(self, event: Input.Changed) -> None:
        self.show_rows(event.value)

    @on(Input.Submitted, "#filter")
    def on_filter_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if "/" in text and " " not in text:
            self.notify(f"Looking up {text}…", timeout=3)
            self._fetch_rows(text)
        self.query_one(DataTable).focus()

    # ------------------------------------------------------------------ actions
    @on(DataTable.RowSelected)
    def on_row_selected(self) -> None:
        self.action_load()

    def action_load(self) -> None:
        row = self.selected()
        if row is None:
            return
        name = row.key if row.quant != "auto" else row.name
        self.app.load_model(name)  # type: ignore[attr-defined]
        self.app.pop_screen()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_back(self) -> None:
        if self.pulling is not None:
            self.cancel_pull.set()
            self.query_one("#pull-label", Label).update(f"cancelling {self.pulling}…")
            return
        self.app.pop_screen()

    def action_pull(self) -> None:
        row = self.selected()
        if row is None:
            return
        if self.pulling is not None:
            self.notify(f"Already pulling {self.pulling}", severity="warning")
            return
        self.pulling = row.key
        self.cancel_pull.clear()
        self.query_one("#pull-box").display = True
        self.query_one("#pull-label", Label).update(f"pulling {row.key}…  (Esc cancels)")
        self._pull(row.key)

    @work(thread=True, exclusive=True, group="pull", exit_on_error=False)
    def _pull(self, key: str) -> None:
        worker = get_current_worker()

        def progress(event: Any) -> None:
            if self.cancel_pull.is_set() or worker.is_cancelled:
                raise PullCancelled(key)
            self.post_message(self.Progress(event))

        try:
            services.pull(key, progress)
        except BaseException as exc:
            self.post_message(self.PullDone(key, exc))
            return
        self.post_message(self.PullDone(key, None))

    def on_models_screen_progress(self, event: Progress) -> None:
        e = event.event
        total = getattr(e, "overall_bytes_total", 0) or 0
        done = getattr(e, "overall_bytes_done", 0) or 0
        bar = self.query_one("#pull-bar", ProgressBar)
        bar.update(total=max(total, 1), progress=done)
        speed = services.format_size(getattr(e, "speed_bytes_per_s", 0.0))
        eta = services.format_eta(getattr(e, "eta_s", None))
        self.query_one("#pull-label", Label).update(
            f"{self.pulling}: {services.format_size(done)} / {services.format_size(total)}"
            f" · {speed}/s · ETA {eta}  (Esc cancels)"
        )

    def on_models_screen_pull_done(self, event: PullDone) -> None:
        self.pulling = None
        self.query_one("#pull-box").display = False
        if isinstance(event.error, PullCancelled):
            self.notify(f"Pull of {event.key} cancelled; pull again to resume")
        elif event.error is not None:
            self.app.report_error(event.error, doing=f"pulling {event.key}")  # type: ignore[attr-defined]
        else:
            self.notify(f"{event.key} is on disk; Enter loads it")
            self._mark_on_disk(event.key, True)

    def _mark_on_disk(self, key: str, on_disk: bool) -> None:
        row = self.rows.get(key)
        if row is not None:
            from dataclasses import replace

            self.rows[key] = replace(row, on_disk=on_disk)
            self.show_rows(self.query_one("#filter", Input).value)

    @work
    async def action_remove(self) -> None:
        row = self.selected()
        if row is None or not row.on_disk:
            self.notify("Nothing on disk to delete", severity="warning")
            return
        if not await self.app.push_screen_wait(ConfirmDialog(f"Delete the files of {row.key}?")):
            return
        try:
            removed = services.remove(row.key)
        except Exception as exc:
            self.app.report_error(exc, doing=f"deleting {row.key}")  # type: ignore[attr-defined]
            return
        if removed:
            self._mark_on_disk(row.key, False)
            self.notify(f"Deleted {row.key}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
