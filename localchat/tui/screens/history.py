"""History: conversations newest first; search, reopen, rename, delete, export to Markdown."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label

from localchat.paths import data_dir
from localchat.tui.screens.dialogs import ConfirmDialog, TextDialog
from localchat.tui.screens.listing import FilteredListScreen
from localchat.tui.services import Conversation, HistoryStore

# Fixed column widths; the title takes what is left (DataTable pads each cell by 1 on each side).
FIXED_COLUMNS = (("model", "Model", 18), ("count", "Msgs", 4), ("when", "Last active", 16))
MIN_TITLE_WIDTH = 16
TABLE_CHROME = 4  # the table's side margins and its scrollbar


def title_width(screen_width: int) -> int:
    fixed = sum(width + 2 for _key, _label, width in FIXED_COLUMNS)
    return max(MIN_TITLE_WIDTH, screen_width - TABLE_CHROME - fixed - 2)


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def export_dir() -> Path:
    return data_dir() / "exports"


class HistoryScreen(FilteredListScreen):
    FILTER_ID = "search"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open", priority=True),  # from the list or the search
        Binding("ctrl+e", "rename", "Rename"),
        Binding("ctrl+d", "delete", "Delete", priority=True),  # before the search's delete-right
        Binding("ctrl+x", "export", "Export"),
    ]

    @dataclass
    class OpenRequested(Message):
        """Open this conversation in the chat."""

        conversation_id: int

    @dataclass
    class Deleted(Message):
        """This conversation was deleted (the chat starts a new one if it was open)."""

        conversation_id: int

    def __init__(self, store: HistoryStore) -> None:
        super().__init__()
        self.store = store
        self._title_width = 0
        self._search: str | None = None

    def compose(self) -> ComposeResult:
        yield Label("History", classes="screen-title")
        yield Input(
            placeholder="Type to search titles and messages…", id="search", select_on_focus=False
        )  # keys typed on the list land here: selecting on focus would eat the first ones
        yield DataTable(cursor_type="row", zebra_stripes=True, id="conversations")
        yield Label("", id="history-empty")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._add_columns(self.app.size.width)
        self.refresh_list()
        self.query_one(DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        if title_width(event.size.width) != self._title_width:
            self._add_columns(event.size.width)
            self.refresh_list(self.query_one("#search", Input).value)

    def _add_columns(self, screen_width: int) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._title_width = title_width(screen_width)
        table.add_column("Title", key="title", width=self._title_width)
        for key, label, width in FIXED_COLUMNS:
            table.add_column(label, key=key, width=width)

    def refresh_list(self, search: str | None = None) -> None:
        """List the conversations matching ``search``; the highlight stays on the same
        conversation when it is still listed (by id, not by position)."""
        search = search or None
        conversations = self.store.list_conversations(search)
        table = self.query_one(DataTable)
        current, position = self.selected_id(), table.cursor_row
        table.clear()
        for c in conversations:
            table.add_row(*_cells(c), key=str(c.id))
        if current is not None and str(current) in table.rows:
            table.move_cursor(row=table.get_row_index(str(current)))
        elif table.row_count and search == self._search:  # deleted: the row in its place
            table.move_cursor(row=min(position, table.row_count - 1))
        self._search = search
        empty = self.query_one("#history-empty", Label)
        empty.update("" if conversations else _empty_text(search))
        empty.display = not conversations

    @on(Input.Changed, "#search")
    def on_search(self, event: Input.Changed) -> None:
        self.refresh_list(event.value)

    def selected_id(self) -> int | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    @on(DataTable.RowSelected)
    def on_row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        conversation_id = self.selected_id()
        if conversation_id is not None:
            self.post_message(self.OpenRequested(conversation_id))

    @work
    async def action_rename(self) -> None:
        conversation_id = self.selected_id()
        conversation = self.store.conversation(conversation_id) if conversation_id else None
        if conversation is None:
            return
        title = await self.app.push_screen_wait(
            TextDialog("Rename conversation", conversation.display_title, button="Rename")
        )
        if title and title.strip():
            self.store.rename(conversation.id, title)
            self.refresh_list(self.query_one("#search", Input).value)

    @work
    async def action_delete(self) -> None:
        conversation_id = self.selected_id()
        conversation = self.store.conversation(conversation_id) if conversation_id else None
        if conversation is None:
            return
        if await self.app.push_screen_wait(
            ConfirmDialog(f"Delete “{conversation.display_title}”?")
        ):
            self.store.delete(conversation.id)
            self.post_message(self.Deleted(conversation.id))
            self.refresh_list(self.query_one("#search", Input).value)
            self.notify("Conversation deleted")

    def action_export(self) -> None:
        conversation_id = self.selected_id()
        if conversation_id is None:
            return
        try:
            path = export_conversation(self.store, conversation_id)
        except OSError as exc:
            self.notify(f"Could not write the export: {exc}", severity="error")
            return
        self.notify(f"Exported to {path}", timeout=8)


def export_conversation(
    store: HistoryStore, conversation_id: int, folder: Path | None = None
) -> Path:
    folder = folder or export_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chat-{conversation_id}.md"
    path.write_text(store.export_markdown(conversation_id), encoding="utf-8")
    return path


def _cells(conversation: Conversation) -> tuple[str, str, str, str]:
    return (
        conversation.display_title,
        conversation.model,
        str(conversation.message_count),
        when(conversation.updated_at),
    )


def _empty_text(search: str | None) -> str:
    if search:
        return f"No conversation matches “{search}”."
    return "No conversations yet — they appear here as you chat (and from `localchat ask`)."
