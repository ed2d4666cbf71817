"""One chat message: a role line, folded thinking (Reflection), Markdown body, stats."""

from __future__ import annotations

import re
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Collapsible, Label, Markdown
from textual.widgets.markdown import MarkdownStream

from localchat.tui.streaming import OUTPUT_KINDS, Part

CODE_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.DOTALL | re.MULTILINE)
ROLE_LABELS = {"user": "You", "assistant": "Assistant", "system": "System"}


def code_blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks, in order."""
    return [match.group(2).rstrip("\n") for match in CODE_FENCE.finditer(markdown)]


class MessageView(Vertical, can_focus=True):
    """A message; assistant replies can stream into it part by part."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy"),
        Binding("b", "copy_code", "Code"),  # copy the last code block
        Binding("e", "edit", "Edit"),  # edit and resend
        Binding("r", "regenerate", "Retry"),  # regenerate this reply
    ]

    class Action(Message):
        def __init__(self, view: MessageView, action: str) -> None:
            super().__init__()
            self.view = view
            self.action = action

    def __init__(
        self,
        role: str,
        text: str = "",
        *,
        message_id: int | None = None,
        label: str | None = None,
        stats: str = "",
        thinking: str = "",
    ) -> None:
        super().__init__(classes=f"message {role}")
        self.role = role
        self.message_id = message_id
        self.output_text = text
        self.thinking_text = thinking
        self._label = label or ROLE_LABELS.get(role, role)
        self._stats = stats
        self._stream: MarkdownStream | None = None
        self._thinking_stream: MarkdownStream | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="role")
        if self.thinking_text:
            yield self._make_thinking(self.thinking_text)
        yield Markdown(self.output_text, classes="body")
        yield Label(self._stats, classes="stats")

    def on_mount(self) -> None:
        self.query_one(".stats", Label).display = bool(self._stats)

    @property
    def body(self) -> Markdown:
        return self.query_one(".body", Markdown)

    @property
    def raw_text(self) -> str:
        return self.output_text

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit":
            return self.role == "user"
        if action == "regenerate":
            return self.role == "assistant"
        if action == "copy_code":
            return bool(code_blocks(self.output_text))
        return True

    # ------------------------------------------------------------------ streaming
    def start_stream(self) -> None:
        self._stream = Markdown.get_stream(self.body)
        self.add_class("streaming")

    async def append_parts(self, parts: list[Part]) -> None:
        for part in parts:
            if part.kind in OUTPUT_KINDS:
                self.output_text += part.text
                if self._stream is not None:
                    await self._stream.write(part.text)
            else:
                await self._append_thinking(part.text)

    async def finish(self, output: str, thinking: str, stats: str) -> None:
        """End the stream and show the final text in full (fixes half-parsed fences)."""
        for stream in (self._stream, self._thinking_stream):
            if stream is not None:
                await stream.stop()
        self._stream = self._thinking_stream = None
        if output != self.output_text:  # streamed text already renders as a full update would
            await self.body.update(output)
        self.output_text = output
        self.thinking_text = thinking
        self.remove_class("streaming")
        self.set_stats(stats)

    def set_stats(self, stats: str) -> None:
        self._stats = stats
        label = self.query_one(".stats", Label)
        label.update(stats)
        label.display = bool(stats)

    async def _append_thinking(self, text: str) -> None:
        self.thinking_text += text
        if self._thinking_stream is None:
            folded = self._make_thinking("")
            await self.mount(folded, before=self.body)
            self._thinking_stream = Markdown.get_stream(folded.query_one(Markdown))
        await self._thinking_stream.write(text)

    @staticmethod
    def _make_thinking(text: str) -> Collapsible:
        return Collapsible(
            Markdown(text, classes="thinking"), title="Thinking", collapsed=True, classes="fold"
        )

    # ------------------------------------------------------------------ actions
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.output_text)
        self.notify("Message copied to the clipboard")

    def action_copy_code(self) -> None:
        blocks = code_blocks(self.output_text)
        if blocks:
            self.app.copy_to_clipboard(blocks[-1])
            self.notify("Code block copied to the clipboard")

    def action_edit(self) -> None:
        self.post_message(self.Action(self, "edit"))

    def action_regenerate(self) -> None:
        self.post_message(self.Action(self, "regenerate"))
