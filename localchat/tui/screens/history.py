"""History: conversations newest first; search, reopen, rename, delete, export to Markdown."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label

from localchat.history import Conversation
from localchat.tui.screens.dialogs import ConfirmDialog, TextDialog


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def export_dir() -> Path:
    from localchat.paths import data_dir

    return data_dir() / "exports"


class HistoryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open", show=True),
        Binding("ctrl+e", "rename", "Rename"),
        Binding("ctrl+d", "delete", "Delete"),
        Binding("ctrl+x", "export", "Export .md"),
        Binding("ctrl+f", "focus_search", "Search"),
    ]

    def compose(self) -> ComposeResult:
        yield Label("History", classes="screen-title")
        yield Input(placeholder="Search titles and messages…", id="search")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="conversations")
        yield Label("", id="history-empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Title", key="title", width=48)
        table.add_column("Model", key="model", width=22)
        table.add_column("Msgs", key="count", width=5)
        table.add_column("Last active", key="when", width=16)
        self.refresh_list()
        table.focus()

    @property
    def store(self) -> Any:
        return self.app.store  # type: ignore[attr-defined]

    def refresh_list(self, search: str | None = None) -> None:
        conversations = self.store.list_conversations(search or None)
        table = self.query_one(DataTable)
        table.clear()
        for c in conversations:
            table.add_row(*_cells(c), key=str(c.id))
        empty = self.query_one("#history-empty", Label)
        empty.update("" if conversations else _empty_text(search))
        empty.display = not conversations

    @on(Input.Changed, "#search")
    def on_search(self, event: Input.Changed) -> None:
        self.refresh_list(event.value)

    @on(Input.Submitted, "#search")
    def on_search_submitted(self) -> None:
        self.query_one(DataTable).focus()

    def selected_id(self) -> int | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    @on(DataTable.RowSelected)
    async def on_row_selected(self) -> None:
        await self.action_open()

    async def action_open(self) -> None:
        conversation_id = self.selected_id()
        if conversation_id is not None:
            await self.app.open_conversation(conversation_id)  # type: ignore[attr-defined]

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

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
            session = self.app.session  # type: ignore[attr-defined]
            if session.conversation_id == conversation.id:
                await self.app.chat.new_chat()  # type: ignore[attr-defined]
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


def export_conversation(store: Any, conversation_id: int, folder: Path | None = None) -> Path:
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
