"""The bar under the chat: loaded model, context meter, what the engine is doing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar


class ContextMeter(Horizontal):
    """``used / n_ctx`` tokens, measured with the model's own tokenizer."""

    used: reactive[int] = reactive(0)
    n_ctx: reactive[int] = reactive(0)

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="ctx-bar")
        yield Label("ctx –", id="ctx-label")

    def watch_used(self) -> None:
        self._refresh()

    def watch_n_ctx(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        if not self.is_mounted:
            return
        label = self.query_one("#ctx-label", Label)
        bar = self.query_one("#ctx-bar", ProgressBar)
        if self.n_ctx <= 0:
            label.update("ctx –")
            bar.update(total=1, progress=0)
            return
        label.update(f"ctx {self.used:,}/{self.n_ctx:,}")
        bar.update(total=self.n_ctx, progress=min(self.used, self.n_ctx))
        self.set_class(self.used > 0.9 * self.n_ctx, "-full")


class StatusBar(Horizontal):
    """Model name on the left, engine state in the middle, context meter on the right."""

    def compose(self) -> ComposeResult:
        yield Label("no model", id="model-label")
        yield Label("", id="state-label")
        yield ContextMeter(id="meter")

    def set_model(self, text: str) -> None:
        self.query_one("#model-label", Label).update(text)

    def set_state(self, text: str) -> None:
        self.query_one("#state-label", Label).update(text)

    @property
    def meter(self) -> ContextMeter:
        return self.query_one(ContextMeter)
