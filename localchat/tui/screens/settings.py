"""Settings: default model, system prompt, sampling, context size, theme; saved to disk."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, TextArea

from localchat.errors import ConfigError
from localchat.settings import Settings

NUMBER_FIELDS: dict[str, tuple[str, type]] = {
    "temperature": ("Temperature (blank: the model's)", float),
    "top_p": ("top_p (blank: the model's)", float),
    "max_tokens": ("Max tokens per reply (blank: no limit)", int),
    "context_size": ("Context size (blank: the planner's; next load)", int),
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


class SettingsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    def compose(self) -> ComposeResult:
        settings: Settings = self.app.settings  # type: ignore[attr-defined]
        yield Label("Settings", classes="screen-title")
        with VerticalScroll(id="settings-form"):
            yield Label("Default model (catalog name, owner/repo:QUANT, or a path)")
            yield Input(settings.default_model or "", id="default_model")
            yield Label("System prompt")
            yield TextArea(settings.system_prompt, id="system_prompt", soft_wrap=True)
            with Grid(id="number-fields"):
                for name, (label, _kind) in NUMBER_FIELDS.items():
                    value = getattr(settings, name)
                    with Vertical():
                        yield Label(label)
                        yield Input("" if value is None else str(value), id=name, type="number")
            yield Label("Theme")
            yield Select(
                [(name, name) for name in sorted(self.app.available_themes)],
                value=settings.theme,
                allow_blank=False,
                id="theme",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Back", id="back")
        yield Footer()

    def collect(self) -> Settings:
        """The form as Settings; raises ConfigError on a bad value."""
        current: Settings = self.app.settings  # type: ignore[attr-defined]
        values: dict[str, Any] = {
            "default_model": self.query_one("#default_model", Input).value.strip() or None,
            "system_prompt": self.query_one("#system_prompt", TextArea).text,
            "theme": str(self.query_one("#theme", Select).value),
        }
        for name in NUMBER_FIELDS:
            values[name] = parse_number(name, self.query_one(f"#{name}", Input).value)
        return Settings(**values, extra=dict(current.extra)).validate()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        try:
            settings = self.collect()
        except ConfigError as exc:
            self.notify(exc.one_line(), title="Not saved", severity="error")
            return
        self.app.apply_settings(settings)  # type: ignore[attr-defined]

    @on(Button.Pressed, "#back")
    def go_back(self) -> None:
        self.app.pop_screen()
