"""A hub repo's plan for this machine, per quant: pick one to load or pull.

Every quant the planner weighed, best quality first, with its size, layers on the GPU,
context, predicted speed and expected loss; the planner's choice is marked and
highlighted.  Enter loads the highlighted quant (downloading it first), ctrl+g pulls it,
Esc closes.  Dismisses with ``("load" | "pull", "owner/repo:QUANT")`` or None.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static

from localchat.tui.services import HubRow

Choice = tuple[str, str]  # ("load" | "pull", "owner/repo:QUANT")


class HubPlanDialog(ModalScreen[Choice | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "choose('load')", "Load", priority=True),
        Binding("ctrl+g", "choose('pull')", "Pull"),
    ]

    def __init__(self, row: HubRow) -> None:
        super().__init__(classes="dialog")
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="hub-plan-box"):
            yield Label(f"{escape(self.row.key)}: every quant here", classes="dialog-title")
            yield Static(escape(self.row.summary), id="hub-plan-summary")
            yield DataTable(cursor_type="row", id="hub-plan-table")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in (
            ("", "mark", 1), ("Quant", "quant", 8), ("Size", "size", 8),
            ("On GPU", "gpu", 12), ("Ctx", "ctx", 6), ("tok/s", "tok_s", 7), ("Loss", "loss", 8),
        ):  # fmt: skip
            table.add_column(label, key=key, width=width)
        for option in self.row.options:
            table.add_row(
                "*" if option.chosen else "",
                option.quant,
                option.size,
                option.placement,
                str(option.n_ctx),
                option.tok_s,
                option.loss,
                key=option.key,
            )
        chosen = next((i for i, o in enumerate(self.row.options) if o.chosen), 0)
        table.move_cursor(row=chosen)
        table.focus()

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def action_choose(self, what: str) -> None:
        key = self.highlighted()
        if key is not None:
            self.dismiss((what, key))

    @on(DataTable.RowSelected)
    def _clicked(self) -> None:
        self.action_choose("load")

    def action_close(self) -> None:
        self.dismiss(None)
