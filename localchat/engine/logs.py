"""Route llama.cpp's C log away from the terminal.

llama-cpp-python installs a callback that prints llama.cpp's log to stderr,
which breaks a Unix pipe's stderr and corrupts a Textual screen.  We replace
it with one that appends to ``paths.llama_log_file()`` and keeps the text of
the current load in memory (the planner reads buffer sizes from it).  With
``echo_to_stderr`` (``--verbose``) the log also goes to stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

from localchat.paths import ensure_dir, llama_log_file


class LlamaLogRouter:
    """Owns the ctypes callback (it must stay referenced while llama.cpp may call it)."""

    def __init__(self) -> None:
        self.echo_to_stderr = False
        self._lock = threading.Lock()
        self._capture: list[str] | None = None
        self._file: IO[str] | None = None
        self._callback: Any = None

    def install(self) -> None:
        import llama_cpp

        if self._callback is None:
            self._callback = llama_cpp.llama_log_callback(self._on_log)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def write(self, text: str) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.append(text)
            self._log_file().write(text)
        if self.echo_to_stderr:
            sys.__stderr__.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        """Collect the log written inside the block (one load at a time)."""
        captured: list[str] = []
        with self._lock:
            self._capture = captured
        try:
            yield captured
        finally:
            with self._lock:
                self._capture = None
            self.flush()

    @contextlib.contextmanager
    def python_stderr(self) -> Iterator[None]:
        """Send llama-cpp-python's own ``print(..., file=sys.stderr)`` to the log too."""
        with contextlib.redirect_stderr(_PythonSideSink(self)):
            yield

    def _on_log(self, level: int, text: bytes, user_data: Any) -> None:
        with contextlib.suppress(Exception):  # a C callback must never raise
            self.write(text.decode("utf-8", errors="replace"))

    def _log_file(self) -> IO[str]:
        if self._file is None:
            path = llama_log_file()
            ensure_dir(path.parent)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
        return self._file


class _PythonSideSink(io.TextIOBase):
    def __init__(self, router: LlamaLogRouter) -> None:
        self._router = router

    def write(self, text: str) -> int:
        self._router.write(text)
        return len(text)


ROUTER = LlamaLogRouter()
