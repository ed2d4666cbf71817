"""The chat screen: messages, prompt, status bar; drives replies in a worker thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown
from textual.worker import Worker, get_current_worker

from localchat.tui.messages import ReportError
from localchat.tui.model import ChatModel
from localchat.tui.services import ReplyRecorder, StoredMessage
from localchat.tui.session import ChatSession
from localchat.tui.streaming import (
    Outcome,
    Part,
    PartBuffer,
    count_context,
    format_stats,
    output_and_thinking,
    run_generation,
)
from localchat.tui.widgets.message import MessageView
from localchat.tui.widgets.prompt import PromptInput
from localchat.tui.widgets.status import StatusBar
from localchat.types import Message as EngineMessage
from localchat.types import SamplingParams

DRAIN_HZ = 30  # how often streamed text is appended to the view

WELCOME = (
    "**localchat** — type a message and press Enter.\n\n"
    "F2 models · F3 history · F4 settings · F5 loaded model · ctrl+p commands"
)


class ChatScreen(Screen[None]):
    """The open conversation (``session``) and the model that answers in it.

    The app owns the model: it loads one when asked (``ModelWanted``) and tells this
    screen what happened (``load_started``, ``model_ready``, ``model_failed``,
    ``model_gone``).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop", show=True),
        Binding("ctrl+r", "regenerate", "Regenerate", show=False),  # also r on a reply
        Binding("ctrl+n", "new_chat", "New chat"),
    ]

    @dataclass
    class ModelWanted(Message):
        """A message waits for a model and none is loaded: load ``name`` (None: the
        configured default)."""

        name: str | None

    class Drain(Message):
        """Parts are waiting in the buffer (posted from the worker thread)."""

    class ReplyDone(Message):
        def __init__(self, outcome: Outcome) -> None:
            super().__init__()
            self.outcome = outcome

    class ContextCounted(Message):
        def __init__(self, used: int) -> None:
            super().__init__()
            self.used = used

    def __init__(self, session: ChatSession, *, wanted_model: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.model: ChatModel | None = None  # set by the app; replies come from it
        self.wanted_model = wanted_model  # what a message sent with no model loads
        self.loading = False
        self.buffer = PartBuffer()
        self.reply_view: MessageView | None = None
        self.worker: Worker[None] | None = None
        self.stop_requested = threading.Event()
        self.engine_idle = threading.Event()  # clear while a reply is being generated
        self.engine_idle.set()
        self.editing_id: int | None = None
        self.pending_send = False
        self.replies_done = 0  # finished (or stopped) replies, for tests and the bench
        self._last_drain = 0.0
        self._drain_scheduled = False

    @property
    def generating(self) -> bool:
        return self.worker is not None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="messages"):
            yield Markdown(WELCOME, id="welcome")
        yield StatusBar(id="status")
        yield PromptInput(id="prompt", placeholder="Message (Enter sends)")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#messages", VerticalScroll).anchor()
        self.query_one(PromptInput).focus()
        self.refresh_model()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating or self.editing_id is not None
        if action in ("new_chat", "regenerate"):  # hidden while a reply runs (they would wait)
            return not self.generating
        return True

    # ------------------------------------------------------------------ model state
    def refresh_model(self) -> None:
        status = self.query_one(StatusBar)
        model = self.model
        if model is None:
            status.set_model("no model" if self.loading else "no model (F2 to pick one)")
            status.meter.n_ctx = 0
            return
        quant = f" {model.quant}" if model.quant else ""
        engine = model.engine_label  # shown when a server runs the model
        where = f" · {engine}" if engine and not engine.startswith("in-process") else ""
        status.set_model(f"{model.name}{quant}{where}")
        status.meter.n_ctx = model.n_ctx
        self.count_context_later()

    def set_state(self, text: str) -> None:
        self.query_one(StatusBar).set_state(text)

    def load_started(self, name: str | None, state: str) -> None:
        """The app frees the model and loads ``name``; ``state`` says so meanwhile."""
        self.model, self.wanted_model, self.loading = None, name, True
        self.set_state(state)
        self.refresh_model()

    async def model_ready(self, model: ChatModel) -> None:
        """A load finished; sends a message that was waiting for it."""
        self.model, self.loading = model, False
        self.set_state("")
        self.refresh_model()
        if self.pending_send:
            self.pending_send = False
            await self.start_reply()

    def model_failed(self) -> None:
        self.loading = self.pending_send = False
        self.refresh_model()
        self.set_state("")

    def model_gone(self) -> None:
        """The app unloaded the model."""
        self.model = None
        self.refresh_model()

    # ------------------------------------------------------------------ conversation
    async def show_conversation(self) -> None:
        """Rebuild the message list from the session (after opening a chat)."""
        container = self.query_one("#messages", VerticalScroll)
        await container.query(MessageView).remove()
        self.query_one("#welcome").display = not self.session.messages
        views = [self._view_for(m) for m in self.session.messages]
        if views:
            await container.mount_all(views)
        container.anchor()
        self.sub_title = self.session.title
        self.count_context_later()

    def _view_for(self, message: StoredMessage) -> MessageView:
        if message.role != "assistant":
            return MessageView(message.role, message.content, message_id=message.id)
        output, thinking = output_and_thinking(self.model, message.content)
        stats = format_stats(message.stats) or ("" if message.finished else "interrupted")
        label = _assistant_label((message.stats or {}).get("model"))
        return MessageView(
            "assistant", output, message_id=message.id, label=label, stats=stats, thinking=thinking
        )

    async def new_chat(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc)", severity="warning")
            return
        self.session.new()
        await self.show_conversation()

    # ------------------------------------------------------------------ sending
    @on(PromptInput.Submitted)
    async def on_prompt_submitted(self, event: PromptInput.Submitted) -> None:
        await self.send(event.text)

    async def send(self, text: str) -> None:
        if self.generating or self.pending_send:
            self.notify("Still replying — press Esc to stop it first", severity="warning")
            return
        if self.editing_id is not None:
            await self._truncate_views(self.editing_id)
            self.session.truncate_from(self.editing_id)
            self.editing_id = None
        model = self.model
        model_name = model.name if model is not None else self.wanted_model or "default"
        try:
            saved = self.session.add_user(text.strip(), model_name)
        except sqlite3.Error as exc:
            self.post_message(ReportError(exc, "saving your message (nothing was sent)"))
            return
        self.query_one(PromptInput).clear()
        self.query_one("#welcome").display = False
        await self.query_one("#messages").mount(self._view_for(saved))
        self.query_one("#messages", VerticalScroll).anchor()
        self.sub_title = self.session.title
        if self.model is None:
            self.want_model()
            return
        await self.start_reply()

    def want_model(self) -> None:
        """The waiting message is sent once the model is loaded: ask the app for it,
        unless a load is already under way."""
        self.pending_send = True
        if not self.loading:
            self.post_message(self.ModelWanted(self.wanted_model))

    async def start_reply(self) -> None:
        model = self.model
        if model is None:
            return
        view = MessageView("assistant", label=_assistant_label(model.name))
        await self.query_one("#messages").mount(view)
        self.query_one("#messages", VerticalScroll).anchor()
        view.start_stream()
        self.reply_view = view
        self.buffer = PartBuffer()
        self.stop_requested.clear()
        self.set_state("replying… (Esc to stop)")
        sampling = self.session.sampling_for(model.default_sampling())
        self.session.set_model(model.name)
        self.worker = self._generate(
            model, self.session.engine_messages(), sampling, self.session.recorder()
        )
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate(
        self,
        model: ChatModel,
        messages: list[EngineMessage],
        sampling: SamplingParams | None,
        recorder: ReplyRecorder,
    ) -> None:
        worker = get_current_worker()

        def emit(parts: list[Part]) -> None:
            if self.buffer.push(parts):
                self.post_message(self.Drain())

        def is_cancelled() -> bool:
            return worker.is_cancelled or self.stop_requested.is_set()

        self.engine_idle.clear()
        try:
            outcome = run_generation(model, messages, sampling, recorder, emit, is_cancelled)
        finally:
            self.engine_idle.set()
        self.post_message(self.ReplyDone(outcome))

    def stop_for_exit(self) -> None:
        """Ask a running reply to stop (the app is closing); the partial reply is saved."""
        self.stop_requested.set()
        if self.worker is not None:
            self.worker.cancel()

    async def on_chat_screen_drain(self, _: Drain) -> None:
        """Show what the worker produced, at most ``DRAIN_HZ`` times a second: every append
        costs a layout pass, and fewer passes leave the loop free for keys."""
        wait = self._last_drain + 1 / DRAIN_HZ - time.monotonic()
        if wait <= 0:
            await self._drain_now()
        elif not self._drain_scheduled:
            self._drain_scheduled = True
            self.set_timer(wait, self._drain_now)

    async def _drain_now(self) -> None:
        self._drain_scheduled = False
        self._last_drain = time.monotonic()
        parts = self.buffer.drain()
        if parts and self.reply_view is not None:
            await self.reply_view.append_parts(parts)

    async def on_chat_screen_reply_done(self, event: ReplyDone) -> None:
        outcome = event.outcome
        await self._drain_now()
        view, self.reply_view, self.worker = self.reply_view, None, None
        self.replies_done += 1
        if view is not None:
            await self._finish_view(view, outcome)
        self.session.reload()
        stats = outcome.stats
        if stats is not None and stats.prompt_tokens:
            self.query_one(StatusBar).meter.used = stats.prompt_tokens + stats.completion_tokens
        self.set_state("stopped" if outcome.cancelled else "")
        if outcome.error is not None:
            self.post_message(ReportError(outcome.error, "generating the reply"))
        self.refresh_bindings()

    async def _finish_view(self, view: MessageView, outcome: Outcome) -> None:
        if not outcome.text and outcome.message_id is None:
            await view.remove()
            return
        view.message_id = outcome.message_id
        output, thinking = output_and_thinking(self.model, outcome.text)
        await view.finish(output, thinking, format_stats(outcome.stats))

    # ------------------------------------------------------------------ actions
    def action_stop(self) -> None:
        if self.generating:
            self.stop_requested.set()
            if self.worker is not None:
                self.worker.cancel()
            self.set_state("stopping…")
        elif self.editing_id is not None:
            self.editing_id = None
            self.query_one(PromptInput).clear()
            self.set_state("")
            self.refresh_bindings()

    async def action_regenerate(self) -> None:
        if self.generating or self.session.last_user() is None:
            return
        last = self.session.last_assistant()
        if last is not None:
            await self._truncate_views(last.id)
            self.session.truncate_from(last.id)
        if self.model is None:
            self.want_model()
        else:
            await self.start_reply()

    async def action_new_chat(self) -> None:
        await self.new_chat()

    @on(MessageView.Action)
    async def on_message_action(self, event: MessageView.Action) -> None:
        if event.action == "regenerate":
            await self.action_regenerate()
        elif event.action == "edit" and event.view.message_id is not None:
            self.begin_edit(event.view)

    def begin_edit(self, view: MessageView) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc)", severity="warning")
            return
        self.editing_id = view.message_id
        prompt = self.query_one(PromptInput)
        prompt.text = view.raw_text
        prompt.focus()
        prompt.move_cursor(prompt.document.end)
        self.set_state("editing — Enter resends from here, Esc cancels")
        self.refresh_bindings()

    async def _truncate_views(self, message_id: int) -> None:
        for view in list(self.query(MessageView)):
            if view.message_id is not None and view.message_id >= message_id:
                await view.remove()

    def last_reply_text(self) -> str | None:
        last = self.session.last_assistant()
        return last.content if last else None

    # ------------------------------------------------------------------ context meter
    def count_context_later(self) -> None:
        if self.model is not None:
            self._count_context(self.model, self.session.engine_messages())

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def _count_context(self, model: ChatModel, messages: list[EngineMessage]) -> None:
        self.post_message(self.ContextCounted(count_context(model, messages) if messages else 0))

    def on_chat_screen_context_counted(self, event: ContextCounted) -> None:
        if not self.generating:
            self.query_one(StatusBar).meter.used = event.used


def _assistant_label(model_name: str | None) -> str:
    return f"Assistant · {model_name}" if model_name else "Assistant"
