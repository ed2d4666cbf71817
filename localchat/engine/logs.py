"""Route llama.cpp's C log away from the terminal.

llama-cpp-python installs a callback that prints llama.cpp's log to stderr,
which breaks a Unix pipe's stderr and corrupts a Textual screen.  We replace
it with one that appends to ``paths.llama_log_file()`` and keeps the text of
the current load in memory (the planner reads buffer sizes from it).  With
``echo_to_stderr`` (``--verbose``) the log also goes to stderr.

The file is rotated by size (``LOG_MAX_BYTES``, one old copy as ``llama.log.1``): a
load writes ~140 KB, and the log must not grow for ever.  A log file that cannot be
written (read-only home, full disk) is dropped quietly; generation never fails over it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import sys
import threading
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from typing import Any

from localchat.paths import ensure_dir, llama_log_file

LOG_MAX_BYTES = 2 * 2**20
LOG_BACKUP_COUNT = 1


class LlamaLogRouter:
    """Owns the ctypes callback (it must stay referenced while llama.cpp may call it)."""

    def __init__(self) -> None:
        self.echo_to_stderr = False
        self._lock = threading.Lock()
        self._capture: list[str] | None = None
        self._file: _LogFile | None = None
        self._file_failed = False
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
            self._to_file(text)
        if self.echo_to_stderr:
            sys.__stderr__.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self._file_failed = None, False

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
        # A C callback must never raise: ctypes would print "Exception ignored" and drop
        # it.  Loads run off the main thread (engine.interrupt), so Ctrl-C lands there.
        with contextlib.suppress(BaseException):
            self.write(text.decode("utf-8", errors="replace"))

    def _to_file(self, text: str) -> None:
        if self._file_failed:
            return
        if self._file is None:
            path = llama_log_file()
            try:
                ensure_dir(path.parent)
            except OSError:
                self._file_failed = True
                return
            self._file = _LogFile(path)
        self._file.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
        self._file_failed = self._file.failed


class _LogFile(RotatingFileHandler):
    """llama.log, rotated by size; text is written as it comes (no newline added)."""

    terminator = ""

    def __init__(self, path: Any) -> None:
        super().__init__(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUP_COUNT, encoding="utf-8", delay=True
        )
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True  # logging would print a traceback to stderr; we stop logging


class _PythonSideSink(io.TextIOBase):
    def __init__(self, router: LlamaLogRouter) -> None:
        self._router = router

    def write(self, text: str) -> int:
        self._router.write(text)
        return len(text)


ROUTER = LlamaLogRouter()
