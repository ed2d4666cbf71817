"""Models: two tabs, F2 switches.  The catalog (and typed-in hub repos), each quant with
size, fit badge and disk state; and hub search, each repo with its verdict for this machine.

Catalog: typing filters the list (``FilteredListScreen``).  Enter loads the highlighted
model (downloading it first when needed), or looks up a typed ``owner/repo`` on the hub;
ctrl+g pulls it with a progress bar (Esc cancels; pulling again resumes), ctrl+d deletes
its files.  Hub (``widgets.hub_search``): typing searches; Enter shows every quant's plan
(``HubPlanDialog``), where Enter loads and ctrl+g pulls the highlighted quant; ctrl+g on
the list pulls the quant the planner chose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Label, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from localchat.tui import services
from localchat.tui.messages import ReportError
from localchat.tui.progress import PullEvent, transfer_text
from localchat.tui.screens.dialogs import ConfirmDialog
from localchat.tui.screens.hub_plan import Choice, HubPlanDialog
from localchat.tui.screens.listing import FilteredListScreen
from localchat.tui.services import ModelRow, PullCancelled
from localchat.tui.widgets.hub_search import HubSearchPane

CATALOG, HUB = "catalog-pane", "hub-pane"
TAB_TITLES = {CATALOG: "Catalog", HUB: "Hub search"}


class ModelsScreen(FilteredListScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("enter", "load", "Load", priority=True),  # from the list or the filter
        Binding("ctrl+g", "pull", "Pull"),
        Binding("ctrl+d", "remove", "Delete", priority=True),  # before the filter's delete-right
        Binding("f2", "switch_tab", "Tabs"),
    ]

    class RowsReady(Message):
        def __init__(self, rows: list[ModelRow], *, replace: bool) -> None:
            super().__init__()
            self.rows = rows
            self.replace = replace

    @dataclass
    class LoadRequested(Message):
        """Load this model (None: the configured default); the screen closes once the
        load has started."""

        name: str | None

    class Progress(Message):
        def __init__(self, event: PullEvent) -> None:
            super().__init__()
            self.event = event

    class PullDone(Message):
        def __init__(self, key: str, error: BaseException | None) -> None:
            super().__init__()
            self.key = key
            self.error = error

    def __init__(self, *, rows_source: Callable[[], list[ModelRow]] | None = None) -> None:
        super().__init__()
        self.rows: dict[str, ModelRow] = {}
        self.rows_source = rows_source or services.catalog_rows
        self.pulling: str | None = None
        self.cancel_pull = threading.Event()

    def compose(self) -> ComposeResult:
        yield Label(self._title(CATALOG), classes="screen-title", id="models-title")
        with ContentSwitcher(initial=CATALOG, id="models-tabs"):
            with Vertical(id=CATALOG):
                yield Input(
                    placeholder="Filter, or type owner/repo and press Enter",
                    id="filter",
                    select_on_focus=False,  # keys typed on the list land here: selecting eats them
                )
                with Horizontal(id="models-body"):
                    yield DataTable(cursor_type="row", zebra_stripes=True, id="models-table")
                    yield Static("Loading the catalog…", id="model-detail")
            yield HubSearchPane(id=HUB)
        with Vertical(id="pull-box"):
            yield Label("", id="pull-label")
            yield ProgressBar(total=100, show_eta=False, id="pull-bar")
        yield Footer(compact=True)

    # ------------------------------------------------------------------ tabs
    @staticmethod
    def _title(active: str) -> str:
        tabs = "  ".join(
            f"[reverse] {name} [/reverse]" if tab == active else f" {name} "
            for tab, name in TAB_TITLES.items()
        )
        return f"Models  {tabs}  [dim](F2 switches)[/dim]"

    @property
    def hub_active(self) -> bool:
        return self.query_one(ContentSwitcher).current == HUB

    @property
    def hub(self) -> HubSearchPane:
        return self.query_one(HubSearchPane)

    @property
    def table(self) -> DataTable[str]:
        """The active tab's list (``FilteredListScreen`` moves it and types into its box)."""
        if self.hub_active:
            return self.hub.table
        return self.query_one("#models-table", DataTable)

    @property
    def filter_input(self) -> Input:
        return self.hub.query_input if self.hub_active else self.query_one("#filter", Input)

    def action_switch_tab(self) -> None:
        active = CATALOG if self.hub_active else HUB
        self.query_one(ContentSwitcher).current = active
        self.query_one("#models-title", Label).update(self._title(active))
        if active == HUB and not self.hub.query_input.value:
            self.hub.query_input.focus()
        else:
            self.table.focus()

    def on_mount(self) -> None:
        table = self.query_one("#models-table", DataTable)
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
            doing = f"listing {repo}" if repo else "reading the catalog"
            self.post_message(ReportError(exc, doing))
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
        try:
            self._add_fits(rows, get_current_worker(), offline=repo is None)
        except Exception as exc:  # the rows stay, with "unknown" fits; the log has why
            self.post_message(ReportError(exc, "planning the models"))

    def _add_fits(self, rows: list[ModelRow], worker: Worker[None], *, offline: bool) -> None:
        """Plan each row after the list is shown; post the badges in small batches."""
        pending = [row for row in rows if row.fit.badge == "unknown" and row.quant != "auto"]
        if not pending:
            return
        hardware = services.detect_hardware()
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
        """Fill the table with the rows matching ``text``; the highlight stays on the same
        model when it is still listed (by key, not by position)."""
        table = self.query_one("#models-table", DataTable)
        current = self.selected()
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
        if current is not None and current.key in table.rows:
            table.move_cursor(row=table.get_row_index(current.key))
        self.show_detail()

    def selected(self) -> ModelRow | None:
        table = self.query_one("#models-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(str(key)) if key is not None else None

    @on(DataTable.RowHighlighted, "#models-table")
    def show_detail(self) -> None:
        row = self.selected()
        detail = self.query_one("#model-detail", Static)
        if row is None:
            detail.update("No models match." if self.rows else "Loading the catalog…")
            return
        # Most important first: under 100 columns the pane is a few lines under the table.
        size = services.format_size(row.size_bytes)
        lines = [
            f"[b]{escape(row.key)}[/b] · {size} · {escape(row.fit.badge)}",
            escape("on disk" if row.on_disk else "not downloaded (^g pulls, Enter loads)"),
            escape(row.description),
        ]
        if row.fit.detail:
            lines.append(escape(row.fit.detail))
        detail.update("\n".join(line for line in lines if line))

    @on(Input.Changed, "#filter")
    def on_filter(self, event: Input.Changed) -> None:
        self.show_rows(event.value)

    # ------------------------------------------------------------------ actions
    @on(DataTable.RowSelected)
    def on_row_selected(self) -> None:
        self.action_load()

    def action_load(self) -> None:
        """Load the highlighted row; with no row, look up a typed ``owner/repo`` on the hub.
        On the hub tab: search now, or show the highlighted repo's plan per quant."""
        if self.hub_active:
            self._open_hub_row()
            return
        row = self.selected()
        if row is None:
            text = self.filter_input.value.strip()
            if "/" in text and " " not in text:
                self.notify(f"Looking up {text}…", timeout=3)
                self._fetch_rows(text)
            return
        self.post_message(self.LoadRequested(row.key if row.quant != "auto" else row.name))

    def action_back(self) -> None:
        if self.pulling is not None:
            self.cancel_pull.set()
            self.query_one("#pull-label", Label).update(f"cancelling {self.pulling}…")
            return
        self.app.pop_screen()

    def _open_hub_row(self) -> None:
        hub = self.hub
        row = hub.selected()
        if hub.query_input.value.strip() != hub.searched or row is None:
            hub.search_now()
        elif not row.options:
            self.notify(row.summary or "Not planned yet", markup=False)
        else:
            self.app.push_screen(HubPlanDialog(row), self._hub_choice)

    def _hub_choice(self, choice: Choice | None) -> None:
        if choice is None:
            return
        what, key = choice
        if what == "pull":
            self.start_pull(key)
        else:
            self.post_message(self.LoadRequested(key))

    def action_pull(self) -> None:
        if self.hub_active:
            hub_row = self.hub.selected()
            if hub_row is not None and hub_row.pull_key is None:
                self.notify(hub_row.summary or "Not planned yet", markup=False)
            elif hub_row is not None and hub_row.pull_key is not None:
                self.start_pull(hub_row.pull_key)
            return
        row = self.selected()
        if row is not None:
            self.start_pull(row.key)

    def start_pull(self, key: str) -> None:
        """Pull ``key`` ("name:QUANT", "owner/repo:QUANT") with the progress bar."""
        if self.pulling is not None:
            self.notify(f"Already pulling {self.pulling}", severity="warning")
            return
        self.pulling = key
        self.cancel_pull.clear()
        self.query_one("#pull-box").display = True
        self.query_one("#pull-label", Label).update(f"pulling {key}…  (Esc cancels)")
        self._pull(key)

    @work(thread=True, exclusive=True, group="pull", exit_on_error=False)
    def _pull(self, key: str) -> None:
        worker = get_current_worker()

        def progress(event: PullEvent) -> None:
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
        bar = self.query_one("#pull-bar", ProgressBar)
        bar.update(total=max(e.overall_bytes_total, 1), progress=e.overall_bytes_done)
        label = self.query_one("#pull-label", Label)
        label.update(f"{self.pulling}: {transfer_text(e)}  (Esc cancels)")

    def on_models_screen_pull_done(self, event: PullDone) -> None:
        self.pulling = None
        self.query_one("#pull-box").display = False
        if isinstance(event.error, PullCancelled):
            self.notify(f"Pull of {event.key} cancelled; pull again to resume")
        elif event.error is not None:
            self.post_message(ReportError(event.error, f"pulling {event.key}"))
        else:
            self.notify(f"{event.key} is on disk; Enter loads it")
            self._mark_on_disk(event.key, True)

    def _mark_on_disk(self, key: str, on_disk: bool) -> None:
        row = self.rows.get(key)
        if row is not None:
            self.rows[key] = replace(row, on_disk=on_disk)
            self.show_rows(self.query_one("#filter", Input).value)

    @work
    async def action_remove(self) -> None:
        if self.hub_active:
            self.notify("Delete downloaded models on the Catalog tab (F2)", severity="warning")
            return
        row = self.selected()
        if row is None or not row.on_disk:
            self.notify("Nothing on disk to delete", severity="warning")
            return
        if not await self.app.push_screen_wait(ConfirmDialog(f"Delete the files of {row.key}?")):
            return
        try:
            removed = services.remove(row.key)
        except Exception as exc:
            self.post_message(ReportError(exc, f"deleting {row.key}"))
            return
        if removed:
            self._mark_on_disk(row.key, False)
            self.notify(f"Deleted {row.key}")
