"""The localchat app: owns the settings, the history store, the loaded model and the screens.

Screens talk up to it with messages (the ``@on`` handlers below), and reach none of its
attributes; it talks down to the chat screen by calling it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.worker import get_current_worker

from localchat.errorlog import one_line, write_traceback
from localchat.errors import LocalchatError
from localchat.settings import Settings, load_settings, save_settings
from localchat.tui.messages import ReportError
from localchat.tui.model import ChatModel, Loader
from localchat.tui.progress import PullEvent, load_progress_text
from localchat.tui.screens.chat import ChatScreen
from localchat.tui.screens.history import HistoryScreen
from localchat.tui.screens.loaded import LoadedModelScreen
from localchat.tui.screens.models import ModelsScreen
from localchat.tui.screens.settings import SettingsScreen
from localchat.tui.services import HistoryStore, cancel_loads, open_model
from localchat.tui.session import ChatSession
from localchat.tui.widgets.message import code_blocks

EXIT_WAIT_S = 5.0  # how long quitting waits for a reply to stop at its next token
PAGES: dict[str, type[Screen[Any]]] = {  # the action that opens each page
    "models": ModelsScreen,
    "history": HistoryScreen,
    "settings": SettingsScreen,
}
# Screens get a class by width; app.tcss lays out narrow terminals (80 columns) with it.
WIDTH_BREAKPOINTS: list[tuple[int, str]] = [(0, "-narrow"), (100, "-wide")]


class LocalchatApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "localchat"
    ENABLE_COMMAND_PALETTE = True
    HORIZONTAL_BREAKPOINTS = WIDTH_BREAKPOINTS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "models", "Models"),
        Binding("f3", "history", "History"),
        Binding("f4", "settings", "Settings"),
        Binding("f5", "loaded", "Model", show=False),  # the status bar names the model
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
        Binding("escape", "hide_help_panel", "Close keys", priority=True, show=False),
    ]

    @dataclass
    class ModelLoaded(Message):
        model: ChatModel

    @dataclass
    class LoadFailed(Message):
        error: BaseException

    @dataclass
    class LoadProgress(Message):
        text: str

    def __init__(
        self,
        *,
        model: str | None = None,
        loader: Loader | None = None,
        store: HistoryStore | None = None,
        settings: Settings | None = None,
        settings_path: Path | None = None,
        continue_latest: bool = False,
    ) -> None:
        super().__init__()
        self.settings_path = settings_path
        self.settings, settings_error = _load_settings(settings, settings_path)
        self._settings_error = settings_error
        self._owns_store = store is None
        self.store = store or HistoryStore()
        self.session = ChatSession(self.store, self.settings)
        self.loader: Loader = loader or open_model
        self.model: ChatModel | None = None  # the app closes it; the chat screen uses it
        self.loading = False
        self._first_model = model or self.settings.default_model
        self._autoload = model is not None or bool(self.settings.default_model)
        self._continue_latest = continue_latest
        self._chat_screen: ChatScreen | None = None
        self._page: Screen[Any] | None = None  # the non-modal screen notices belong to

    # ------------------------------------------------------------------ lifecycle
    async def on_mount(self) -> None:
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.screen_change_signal.subscribe(self, self._on_screen_change)
        chat = self._chat_screen = ChatScreen(self.session, wanted_model=self._first_model)
        await self.push_screen(chat)
        if self._settings_error is not None:
            self.report_error(self._settings_error, doing="reading your settings")
        if self._continue_latest:
            latest = self.store.latest_conversation()
            if latest is not None:
                await self.open_conversation(latest.id)
        if self._autoload:
            self.load_model(self._first_model)

    async def on_unmount(self) -> None:
        """Stop a running reply (it is saved), then free the model and the database."""
        chat = self._chat_screen
        if chat is not None:
            chat.stop_for_exit()
            await asyncio.to_thread(chat.engine_idle.wait, EXIT_WAIT_S)
        if self.loading:
            cancel_loads()  # a load under way stops at its next tensor
        self.workers.cancel_all()
        if self.model is not None:
            self.model.close()
        if self._owns_store:
            self.store.close()

    @property
    def chat(self) -> ChatScreen:
        assert self._chat_screen is not None, "the app is not mounted"
        return self._chat_screen

    # ------------------------------------------------------------------ model loading
    def load_model(self, name: str | None) -> bool:
        """Load ``name`` (None: the configured default) in a worker, after freeing the old
        model.  False when it cannot start now (a reply is running)."""
        if self.chat.generating:
            self.notify("Stop the reply first (Esc), then load another model", severity="warning")
            return False
        if self.model is not None:  # free its memory first: the planner plans for what is free
            self.model.close()
            self.model = None
        self.loading = True
        self.chat.load_started(name, f"loading {name or 'the default model'}…")
        self._load(name, self.settings.context_size)
        return True

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, name: str | None, n_ctx: int | None) -> None:
        worker = get_current_worker()

        def progress(event: PullEvent) -> None:
            self.post_message(self.LoadProgress(load_progress_text(event)))

        def notice(text: str) -> None:
            self.call_from_thread(self.notify, text, timeout=8)

        try:
            model = self.loader(
                name,
                n_ctx=n_ctx,
                allow_download=True,
                progress=progress,
                notice=notice,
                settings=self.settings,
            )
        except Exception as exc:
            self.post_message(self.LoadFailed(exc))
            return
        if worker.is_cancelled:
            model.close()
            return
        self.post_message(self.ModelLoaded(model))

    async def on_localchat_app_model_loaded(self, event: ModelLoaded) -> None:
        old, self.model = self.model, event.model
        if old is not None and old is not event.model:
            old.close()
        self.loading = False
        self.notify(f"Loaded {event.model.name}", timeout=3)
        await self.chat.model_ready(event.model)

    def on_localchat_app_load_failed(self, event: LoadFailed) -> None:
        self.loading = False
        self.report_error(event.error, doing="loading the model")
        self.chat.model_failed()

    def on_localchat_app_load_progress(self, event: LoadProgress) -> None:
        self.chat.set_state(event.text)

    @on(ChatScreen.ModelWanted)
    def load_wanted_model(self, event: ChatScreen.ModelWanted) -> None:
        self.load_model(event.name)

    @on(ModelsScreen.LoadRequested)
    def load_picked_model(self, event: ModelsScreen.LoadRequested) -> None:
        if self.load_model(event.name) and isinstance(self.screen, ModelsScreen):
            self.pop_screen()

    # ------------------------------------------------------------------ errors and notices
    @on(ReportError)
    def show_reported_error(self, event: ReportError) -> None:
        self.report_error(event.error, doing=event.doing)

    def report_error(self, error: BaseException, *, doing: str) -> None:
        """One line for the user — what went wrong and what to do, never a traceback.

        Every error also goes to the error log the CLI writes (``localchat.errorlog``), with
        its traceback: a notice disappears, the log stays for a bug report.
        """
        log_path = write_traceback(error, context=doing)
        if isinstance(error, LocalchatError):
            text = error.one_line()
        else:
            where = f"details in {log_path}" if log_path else "no log could be written"
            text = f"{one_line(error)} ({where})"
        self.notify(f"Error {doing}: {text}", severity="error", timeout=12, markup=False)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Notices are one line on the title row (app.tcss), so they never cover content:
        a new one replaces the one shown.  Thread-safe, like ``App.notify``."""
        if title:
            message = f"{escape(title) if markup else title}: {message}"
        self.call_later(self.clear_notifications)  # queued before the new notice
        super().notify(message, severity=severity, timeout=timeout, markup=markup)

    def _on_screen_change(self, screen: Screen[Any]) -> None:
        """Notices belong to the page they were raised on: moving to another page (not to a
        dialog over it, nor back from one) clears them."""
        if isinstance(screen, ModalScreen):
            return
        if self._page is not None and screen is not self._page:
            self.clear_notifications()
        self._page = screen

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_help_panel":  # Esc closes the keys panel; otherwise Esc is the screen's
            return bool(self.screen.query("HelpPanel"))
        page = PAGES.get(action)
        if page is not None and isinstance(self.screen, page):  # the page shown: no key for it
            return False
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ settings
    @on(SettingsScreen.SaveRequested)
    def save_requested_settings(self, event: SettingsScreen.SaveRequested) -> None:
        self.apply_settings(event.settings)

    def apply_settings(self, settings: Settings) -> None:
        """Save and apply new settings; the context size applies at the next load."""
        try:
            save_settings(settings, self.settings_path)
        except (LocalchatError, OSError) as exc:
            self.report_error(exc, doing="saving settings")
            return
        self.settings = settings
        self.session.settings = settings
        if not self.session.messages:
            self.session.system_prompt = settings.system_prompt or None
        if settings.theme in self.available_themes:
            self.theme = settings.theme
        self.notify("Settings saved", timeout=3)

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "settings", None) is not None and self.settings.theme != theme:
            self.settings = dataclasses.replace(self.settings, theme=theme)
            self.session.settings = self.settings
            try:
                save_settings(self.settings, self.settings_path)
            except (LocalchatError, OSError) as exc:
                self.report_error(exc, doing="saving the theme")

    # ------------------------------------------------------------------ navigation
    @on(HistoryScreen.OpenRequested)
    async def open_requested_conversation(self, event: HistoryScreen.OpenRequested) -> None:
        await self.open_conversation(event.conversation_id)

    @on(HistoryScreen.Deleted)
    async def forget_deleted_conversation(self, event: HistoryScreen.Deleted) -> None:
        if self.session.conversation_id == event.conversation_id:
            await self.chat.new_chat()

    async def open_conversation(self, conversation_id: int) -> None:
        if self.chat.generating:
            self.notify("Stop the reply first (Esc)", severity="warning")
            return
        if not self.session.open(conversation_id):
            self.notify("That conversation no longer exists", severity="warning")
            return
        while not isinstance(self.screen, ChatScreen):
            self.pop_screen()
        await self.chat.show_conversation()
        conversation = self.store.conversation(conversation_id)
        if conversation and self.model is not None and conversation.model != self.model.name:
            self.notify(
                f"This chat used {conversation.model}; it continues with {self.model.name}"
                " (F2 to switch)",
                timeout=6,
            )

    def _show(self, screen: Screen[Any]) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, ChatScreen):
            self.pop_screen()
        if not isinstance(self.screen, ChatScreen):
            self.pop_screen()
        self.push_screen(screen)

    def action_models(self) -> None:
        self._show(ModelsScreen())

    def action_history(self) -> None:
        self._show(HistoryScreen(self.store))

    def action_settings(self) -> None:
        self._show(SettingsScreen(self.settings))

    def action_loaded(self) -> None:
        self.push_screen(LoadedModelScreen(self.model), self._loaded_panel_closed)

    def _loaded_panel_closed(self, unload: bool | None) -> None:
        if unload:
            self.action_unload()

    async def action_new_chat(self) -> None:
        while not isinstance(self.screen, ChatScreen):
            self.pop_screen()
        await self.chat.new_chat()

    def action_copy_last_reply(self) -> None:
        text = self.chat.last_reply_text()
        if text:
            self.copy_to_clipboard(text)
            self.notify("Last reply copied to the clipboard")
        else:
            self.notify("No reply to copy yet", severity="warning")

    def action_copy_last_code(self) -> None:
        for message in reversed(self.session.messages):
            blocks = code_blocks(message.content) if message.role == "assistant" else []
            if blocks:
                self.copy_to_clipboard(blocks[-1])
                self.notify("Code block copied to the clipboard")
                return
        self.notify("No code block in this chat", severity="warning")

    def action_unload(self) -> None:
        if self.chat.generating:
            self.notify("Stop the reply first (Esc)", severity="warning")
            return
        if self.model is not None:
            self.model.close()
            self.model = None
            self.notify("Model unloaded")
            self.chat.model_gone()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New chat", "Start a new conversation", self.action_new_chat)
        yield SystemCommand("Models", "Browse, download and load models", self.action_models)
        yield SystemCommand("History", "Reopen, rename, delete, export chats", self.action_history)
        yield SystemCommand("Settings", "Default model, sampling, theme", self.action_settings)
        yield SystemCommand("Loaded model", "What is loaded and where", self.action_loaded)
        yield SystemCommand("Regenerate", "Regenerate the last reply", self.chat.action_regenerate)
        yield SystemCommand(
            "Copy last reply", "Copy it to the clipboard", self.action_copy_last_reply
        )
        yield SystemCommand(
            "Copy last code block", "Copy the last fenced code block", self.action_copy_last_code
        )
        yield SystemCommand("Unload model", "Free the model's memory", self.action_unload)


def _load_settings(
    given: Settings | None, path: Path | None
) -> tuple[Settings, LocalchatError | None]:
    if given is not None:
        return given, None
    try:
        return load_settings(path), None
    except LocalchatError as exc:
        return Settings(), exc
