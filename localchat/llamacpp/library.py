"""The one llama.cpp library object of this process.

``library()`` returns it.  Creating it loads nothing: the log router, the load-cancel
flag and the fatal-error policy can be set up front (the CLI does, before any command
runs).  ``library().native`` loads llama.cpp once (``llamacpp.native``) and keeps on
that object everything native code may call back into: the log callback, the load
progress callback and ggml's abort callback.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from localchat.errors import BackendUnavailable, LocalchatError
from localchat.llamacpp.log import LlamaLogRouter

if TYPE_CHECKING:
    from localchat.llamacpp.native import NativeLibrary

FatalHandler = Callable[[LocalchatError], NoReturn]
AbortReporter = Callable[[str], LocalchatError]  # ggml's abort message -> the error to report


class LlamaCppLibrary:
    """llama.cpp for this process: loaded on first use, never unloaded."""

    def __init__(self) -> None:
        self.log = LlamaLogRouter()
        self._native: NativeLibrary | None = None
        self._native_lock = threading.Lock()
        self._cancel = threading.Event()  # set: every load in flight stops at its next step
        self._fatal_handler: FatalHandler = _default_fatal
        self._abort_reporter: AbortReporter = _llama_aborted

    @property
    def native(self) -> NativeLibrary:
        """llama.cpp loaded, its callbacks installed; ``BackendUnavailable`` when it
        is not installed or its libraries do not load."""
        return self.load()

    def load(self, *, capture_native_stderr: bool = False) -> NativeLibrary:
        """``native``; the first load can point fd 2 at the llama log meanwhile (C code
        that prints to stderr before the log callback is installed).  Not while a
        full-screen app draws on stderr."""
        with self._native_lock:
            if self._native is None:
                with self.log.native_stderr(enabled=capture_native_stderr):
                    # heavy: loads the native libraries, so only here, when first needed
                    from localchat.llamacpp.native import NativeLibrary

                    self._native = NativeLibrary(self)
            return self._native

    @property
    def loaded(self) -> bool:
        return self._native is not None

    # -- loads that Ctrl-C or the app stops -----------------------------------

    def begin_load(self) -> None:
        """A new load starts: forget an earlier cancel (once per model load)."""
        self._cancel.clear()

    def cancel_loads(self) -> None:
        """Stop every load in flight at its next progress step (the app quitting)."""
        self._cancel.set()

    def loads_cancelled(self) -> bool:
        return self._cancel.is_set()

    def keep_loading(self) -> bool:
        """The progress callback's answer; a C callback must never raise."""
        try:
            return not self._cancel.is_set()
        except BaseException:
            return False

    # -- errors inside native code, where nothing can unwind -------------------

    def set_fatal_handler(self, handler: FatalHandler) -> None:
        """Who reports an error raised inside native code (the CLI's one line); the
        handler must end the process."""
        self._fatal_handler = handler

    def set_abort_reporter(self, reporter: AbortReporter) -> None:
        """What an abort inside ggml means (the engine names a lost RPC worker)."""
        self._abort_reporter = reporter

    def on_abort(self, message: bytes | None) -> None:
        """ggml is about to abort(): report it in one line and end the process."""
        lines = (message or b"").decode(errors="replace").strip().splitlines()
        text = lines[0] if lines else "llama.cpp aborted"
        if "GGML_ASSERT" in text:  # drop the build's source path and line
            text = text[text.index("GGML_ASSERT") :]
        self._fatal_handler(self._abort_reporter(text))


def _default_fatal(exc: LocalchatError) -> NoReturn:
    stderr = sys.__stderr__  # native calls may run with fd 2 pointed at the llama log
    if stderr is not None:
        stderr.write(f"localchat: error: {exc.one_line()}\n")
        stderr.flush()
    os._exit(exc.exit_code)


def _llama_aborted(text: str) -> LocalchatError:
    return BackendUnavailable(f"llama.cpp aborted: {text}", hint="see `localchat doctor`")


_LIBRARY = LlamaCppLibrary()


def library() -> LlamaCppLibrary:
    """The process's llama.cpp library object (created at import; loads nothing)."""
    return _LIBRARY
