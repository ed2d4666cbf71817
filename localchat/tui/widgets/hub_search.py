"""The Models screen's hub tab: search the hub as you type, a verdict per repo.

Typing searches after a short pause (Enter searches at once); the previous search is
cancelled when the query changes: its worker stops planning and its late answers are
dropped (each search has a generation number).  Repos appear as soon as the hub lists
them, their verdicts as the planner reaches each.  A hub that fails says so in one
notice; a slow one gets one notice too, and the rest of the screen keeps working.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from localchat.errors import LocalchatError
from localchat.tui import services
from localchat.tui.messages import ReportError
from localchat.tui.services import HubRow

DEBOUNCE_S = 0.4
SLOW_HUB_S = 5.0  # no answer by then: say the hub is slow
MIN_QUERY_CHARS = 2
HINT = "Type part of a repo name to search the hub (GGUF and AWQ repos)."


class HubSearchPane(Vertical):
    """Search box, results table (repo, params, downloads, verdict) and details."""

    @dataclass
    class Rows(Message):
        generation: int
        rows: list[HubRow]

    @dataclass
    class Verdict(Message):
        generation: int
        row: HubRow

    @dataclass
    class Finished(Message):
        generation: int
        found: int
        error: BaseException | None = None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, HubRow] = {}
        self.generation = 0
        self.searched = ""  # the query of the latest search started
        self.searching = False
        self._cancel = threading.Event()
        self._debounce: Timer | None = None
        self._slow: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search the hub, e.g. llama-3 or qwen2.5", id="hub-query")
        with Horizontal(id="hub-body"):
            yield DataTable(cursor_type="row", zebra_stripes=True, id="hub-table")
            yield Static(HINT, id="hub-detail")

    def on_mount(self) -> None:
        table = self.table
        table.add_column("Repo", key="repo", width=30)
        table.add_column("Params", key="params", width=6)
        table.add_column("Downl.", key="downloads", width=6)
        table.add_column("Verdict here", key="verdict", width=20)

    def on_unmount(self) -> None:
        """Leaving the screen (or the app) stops the search: nothing waits for the hub."""
        self._cancel.set()

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#hub-table", DataTable)

    @property
    def query_input(self) -> Input:
        return self.query_one("#hub-query", Input)

    # ------------------------------------------------------------------ searching
    @on(Input.Changed, "#hub-query")
    def _query_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self.search_now)

    def search_now(self) -> None:
        """Search for what the box holds (cancelling any search under way)."""
        if self._debounce is not None:
            self._debounce.stop()
        query = self.query_input.value.strip()
        if query == self.searched and (self.searching or self.rows):
            return
        self._cancel.set()  # the previous search stops planning
        self._cancel = threading.Event()
        self.generation += 1
        self.searched = query
        self.rows = {}
        self.show_rows()
        if len(query) < MIN_QUERY_CHARS:
            self.searching = False
            self.detail.update(HINT)
            return
        self.searching = True
        self.detail.update(f"Searching the hub for {escape(query)!r}…")
        self._watch_slow(self.generation)
        self._search(query, self.generation, self._cancel)

    def _watch_slow(self, generation: int) -> None:
        if self._slow is not None:
            self._slow.stop()

        def still_waiting() -> None:
            if generation == self.generation and self.searching and not self.rows:
                self.notify("The hub is slow to answer; still searching (F2: the catalog)")

        self._slow = self.set_timer(SLOW_HUB_S, still_waiting)

    @work(thread=True, exclusive=True, group="hub-search", exit_on_error=False)
    def _search(self, query: str, generation: int, cancel: threading.Event) -> None:
        try:
            found = services.search_hub(
                query,
                cancel=cancel,
                on_rows=lambda rows: self.post_message(self.Rows(generation, rows)),
                on_row=lambda row: self.post_message(self.Verdict(generation, row)),
            )
        except Exception as exc:  # one notice; the screen stays usable
            self.post_message(self.Finished(generation, 0, exc))
            return
        self.post_message(self.Finished(generation, found))

    @on(Rows)
    def _rows_listed(self, event: Rows) -> None:
        if event.generation != self.generation:
            return
        self.rows = {row.key: row for row in event.rows}
        self.show_rows()

    @on(Verdict)
    def _verdict_reached(self, event: Verdict) -> None:
        if event.generation != self.generation or event.row.key not in self.rows:
            return
        self.rows[event.row.key] = event.row
        table = self.table
        if event.row.key in table.rows:
            table.update_cell(event.row.key, "verdict", event.row.verdict)
        self.show_detail()

    @on(Finished)
    def _search_finished(self, event: Finished) -> None:
        if event.generation != self.generation:
            return
        self.searching = False
        error = event.error
        if isinstance(error, LocalchatError):
            self.notify(f"Hub search: {error.one_line()}", severity="warning", markup=False)
            self.detail.update(f"No results: {escape(error.message)}")
        elif error is not None:
            self.post_message(ReportError(error, "searching the hub"))
        elif not event.found:
            self.detail.update(f"No GGUF or AWQ repo matches {escape(self.searched)!r}.")

    # ------------------------------------------------------------------ the table
    @property
    def detail(self) -> Static:
        return self.query_one("#hub-detail", Static)

    def show_rows(self) -> None:
        table = self.table
        current = self.selected()
        table.clear()
        for row in self.rows.values():
            table.add_row(row.key, row.params, row.downloads, row.verdict, key=row.key)
        if current is not None and current.key in table.rows:
            table.move_cursor(row=table.get_row_index(current.key))
        self.show_detail()

    def selected(self) -> HubRow | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(str(key)) if key is not None else None

    @on(DataTable.RowHighlighted, "#hub-table")
    def show_detail(self) -> None:
        row = self.selected()
        if row is not None:
            self.detail.update(escape(row.detail))
