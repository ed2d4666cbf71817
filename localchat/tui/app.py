"""The localchat app: owns the settings, the history store, the loaded model and the screens."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from localchat.engine.base import SamplingParams
from localchat.errors import LocalchatError
from localchat.history import HistoryStore
from localchat.settings import Settings, load_settings, save_settings
from localchat.tui.screens.chat import ChatScreen
from localchat.tui.services import Loader, format_eta, format_size
from localchat.tui.session import ChatSession

EXIT_WAIT_S = 5.0  # how long quitting waits for a reply to stop at its next token


class LocalchatApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "localchat"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "models", "Models"),
        Binding("f3", "history", "History"),
        Binding("f4", "settings", "Settings"),
        Binding("f5", "loaded", "Loaded model"),
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
    ]

    class ModelLoaded(Message):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

    class LoadFailed(Message):
        def __init__(self, error: BaseException) -> None:
            super().__init__()
            self.error = error

    class LoadProgress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

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
        self.loader: Loader = loader or _default_loader()
        self.model: Any = None
        self.wanted_model: str | None = model or self.settings.default_model
        self.loading_text: str | None = None
        self._autoload = model is not None or bool(self.settings.default_model)
        self._continue_latest = continue_latest
        self._chat_screen: ChatScreen | None = None

    # ------------------------------------------------------------------ lifecycle
    async def on_mount(self) -> None:
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        chat = self._chat_screen = ChatScreen()
        await self.push_screen(chat)
        if self._settings_error is not None:
            self.report_error(self._settings_error, doing="reading your settings")
        if self._continue_latest:
            latest = self.store.latest_conversation()
            if latest is not None:
                await self.open_conversation(latest.id)
        if self._autoload:
            self.load_model(self.wanted_model)

    async def on_unmount(self) -> None:
        """Stop a running reply (it is saved), then free the model and the database."""
        chat = self._chat_screen
        if chat is not None:
            chat.stop_for_exit()
            await asyncio.to_thread(chat.engine_idle.wait, EXIT_WAIT_S)
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
    def load_model(self, name: str | None) -> None:
        """Load ``name`` (None: the configured default) in a worker; the old model stays
        until the new one is ready."""
        if self.chat.generating:
            self.notify("Stop the reply first (Esc), then load another model", severity="warning")
            return
        if self.model is not None:  # free its memory first: the planner plans for what is free
            self.model.close()
            self.model = None
        self.wanted_model = name
        self.loading_text = f"loading {name or 'the default model'}…"
        self.chat.set_state(self.loading_text)
        self.chat.refresh_model()
        self._load(name, self.settings.context_size)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, name: str | None, n_ctx: int | None) -> None:
        worker = get_current_worker()

        def progress(event: Any) -> None:
            self.post_message(self.LoadProgress(_progress_text(event)))

        def notice(text: str) -> None:
            self.call_from_thread(self.notify, text, timeout=8)

        try:
            model = self.loader(
                name, n_ctx=n_ctx, allow_download=True, progress=progress, notice=notice
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
        self.loading_text = None
        self.notify(f"Loaded {event.model.name}", timeout=3)
        self.chat.set_state("")
        await self.chat.on_model_ready()

    def on_localchat_app_load_failed(self, event: LoadFailed) -> None:
        self.loading_text = None
        self.report_error(event.error, doing="loading the model")
        self.chat.on_model_failed()

    def on_localchat_app_load_progress(self, event: LoadProgress) -> None:
        self.loading_text = event.text
        self.chat.set_state(event.text)

    def sampling_for(self, model: Any) -> SamplingParams:
        base_fn = getattr(model, "default_sampling", None)
        base = base_fn() if callable(base_fn) else SamplingParams()
        return self.settings.sampling(base)

    # ------------------------------------------------------------------ errors
    def report_error(self, error: BaseException, *, doing: str) -> None:
        """A notification that says what went wrong and what to do — never a traceback."""
        if isinstance(error, LocalchatError):
            text = error.one_line()
        else:
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            text += " (see the log with `textual console`, or report a bug)"
        self.log.error(f"error while {doing}: {error!r}")
        self.notify(text, title=f"Error {doing}", severity="error", timeout=12)

    # ------------------------------------------------------------------ settings
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
        from localchat.tui.screens.models import ModelsScreen

        self._show(ModelsScreen())

    def action_history(self) -> None:
        from localchat.tui.screens.history import HistoryScreen

        self._show(HistoryScreen())

    def action_settings(self) -> None:
        from localchat.tui.screens.settings import SettingsScreen

        self._show(SettingsScreen())

    def action_loaded(self) -> None:
        from localchat.tui.screens.loaded import LoadedModelScreen

        self.push_screen(LoadedModelScreen())

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
        from localchat.tui.widgets.message import code_blocks

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
            self.chat.refresh_model()

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


def _default_loader() -> Loader:
    from localchat.tui.services import open_model_loader

    return open_model_loader


def _progress_text(event: Any) -> str:
    stage = getattr(event, "stage", "")
    done = getattr(event, "overall_bytes_done", None)
    total = getattr(event, "overall_bytes_total", None)
    if stage == "download" and done is not None and total:
        speed = getattr(event, "speed_bytes_per_s", 0.0) or 0.0
        eta = format_eta(getattr(event, "eta_s", None))
        return (
            f"downloading {format_size(done)} / {format_size(total)}"
            f" · {format_size(speed)}/s · ETA {eta}"
        )
    return f"{stage}…" if stage else "loading…"
