"""What the History and Models screens share: a list with a filter box above it.

The list has the focus; typing a character sends it to the filter, and ↑/↓/PgUp/PgDn
in the filter keep moving the list's highlight, so the user never has to aim the focus.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input

PAGE_ROWS = 10


class FilteredListScreen(Screen[None]):
    """A screen with one ``DataTable`` and one filter ``Input`` (``FILTER_ID``)."""

    FILTER_ID: ClassVar[str] = "filter"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Reached only from the filter: the table handles these keys itself.
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", f"move({-PAGE_ROWS})", "Page up", show=False),
        Binding("pagedown", f"move({PAGE_ROWS})", "Page down", show=False),
        Binding("ctrl+f", "focus_filter", "Filter", show=False),
    ]

    @property
    def table(self) -> DataTable[str]:
        return self.query_one(DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one(f"#{self.FILTER_ID}", Input)

    def on_key(self, event: events.Key) -> None:
        """A character typed on the list goes to the filter."""
        if self.focused is self.table and event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(event.character)

    def on_paste(self, event: events.Paste) -> None:
        """Pasted text (or a burst of keys the terminal delivers as one paste) too."""
        lines = event.text.splitlines()
        if self.focused is self.table and lines:
            event.stop()
            event.prevent_default()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(lines[0])  # the filter is one line

    def action_move(self, rows: int) -> None:
        table = self.table
        if table.row_count:
            table.move_cursor(row=max(0, min(table.cursor_row + rows, table.row_count - 1)))

    def action_focus_filter(self) -> None:
        self.filter_input.focus()
