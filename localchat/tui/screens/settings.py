"""Settings: default model, system prompt, sampling, context, threads, RPC, theme; saved to disk.

One field per row (label, then a compact input whose placeholder says what blank means), so
the whole form and its Save button fit an 80×24 terminal.  A new setting is one entry in
``TEXT_FIELDS``, ``NUMBER_FIELDS`` or ``CHOICE_FIELDS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, TextArea

from localchat.errors import ConfigError
from localchat.settings import Settings

# setting -> (label, placeholder shown while blank)
TEXT_FIELDS: dict[str, tuple[str, str]] = {
    "default_model": ("Default model", "catalog name, owner/repo:QUANT, or a path"),
    "rpc": ("RPC workers", "host:port,... (blank: none)"),
}
# setting -> (label, type, placeholder shown while blank)
NUMBER_FIELDS: dict[str, tuple[str, Callable[[str], float | int], str]] = {
    "temperature": ("Temperature", float, "blank: the model's"),
    "top_p": ("top_p", float, "blank: the model's"),
    "max_tokens": ("Max tokens", int, "per reply; blank: the default limit"),
    "context_size": ("Context size", int, "blank: the planner's (next load)"),
    "threads": ("CPU threads", int, "blank: chosen from the hardware (next load)"),
}
# setting -> (label, [(shown, value), ...]); the first choice is the default
CHOICE_FIELDS: dict[str, tuple[str, list[tuple[str, bool | None]]]] = {
    "repetition_guard": (
        "Repetition",
        [("stop replies that loop (default)", None), ("never stop them", False)],
    ),
}


def parse_number(name: str, text: str) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    kind = NUMBER_FIELDS[name][1]
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None


def field_row(label: str, widget: Widget, *, group_start: bool = False) -> Horizontal:
    """One form row: the label, then the field."""
    classes = "field -group-start" if group_start else "field"
    return Horizontal(Label(label, classes="field-label"), widget, classes=classes)


class SettingsScreen(Screen[None]):
    AUTO_FOCUS = "#default_model"  # typing goes straight into the first field
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    @dataclass
    class SaveRequested(Message):
        """Save these settings and apply them."""

        settings: Settings

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings  # what the form starts from; saved fields replace its own

    def compose(self) -> ComposeResult:
        settings = self.settings
        yield Label("Settings", classes="screen-title")
        with VerticalScroll(id="settings-form", can_focus=False):
            for name, (label, placeholder) in TEXT_FIELDS.items():
                value = getattr(settings, name) or ""
                yield field_row(label, Input(value, placeholder=placeholder, id=name, compact=True))
            prompt = TextArea(
                settings.system_prompt, id="system_prompt", soft_wrap=True, compact=True
            )
            yield field_row("System prompt", prompt, group_start=True)
            for index, (name, (label, _kind, placeholder)) in enumerate(NUMBER_FIELDS.items()):
                value = getattr(settings, name)
                text = "" if value is None else str(value)
                number = Input(text, placeholder=placeholder, id=name, type="number", compact=True)
                yield field_row(label, number, group_start=index == 0)
            for index, (name, (label, choices)) in enumerate(CHOICE_FIELDS.items()):
                current = getattr(settings, name)
                options = [(shown, i) for i, (shown, _value) in enumerate(choices)]
                chosen = next((i for i, (_s, v) in enumerate(choices) if v == current), 0)
                select = Select(options, value=chosen, allow_blank=False, id=name, compact=True)
                yield field_row(label, select, group_start=index == 0)
            themes = [(name, name) for name in sorted(self.app.available_themes)]
            theme = Select(
                themes, value=settings.theme, allow_blank=False, id="theme", compact=True
            )
            yield field_row("Theme", theme)
        with Horizontal(id="settings-buttons"):
            yield Button("Save", variant="primary", id="save", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Footer(compact=True)

    def collect(self) -> Settings:
        """The form as Settings; raises ConfigError on a bad value."""
        values: dict[str, Any] = {
            "system_prompt": self.query_one("#system_prompt", TextArea).text,
            "theme": str(self.query_one("#theme", Select).value),
        }
        for name in TEXT_FIELDS:
            values[name] = self.query_one(f"#{name}", Input).value.strip() or None
        for name in NUMBER_FIELDS:
            values[name] = parse_number(name, self.query_one(f"#{name}", Input).value)
        for name, (_label, choices) in CHOICE_FIELDS.items():
            index = self.query_one(f"#{name}", Select).value
            values[name] = choices[index][1] if isinstance(index, int) else None
        return dataclasses.replace(self.settings, **values).validate()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        try:
            settings = self.collect()
        except ConfigError as exc:
            self.notify(f"Not saved: {exc.one_line()}", severity="error", markup=False)
            return
        self.settings = settings
        self.post_message(self.SaveRequested(settings))

    @on(Button.Pressed, "#back")
    def go_back(self) -> None:
        self.app.pop_screen()
