"""Where llama.cpp's C log goes: a size-capped file, the current load's capture, and
stderr only with ``--verbose``.

llama.cpp logs through a callback (``llama_log_set``); without one it prints to stderr,
which breaks a Unix pipe's stderr and corrupts a Textual screen.  The library object
(``llamacpp.library``) installs a ctypes callback that hands every line to the router
here.  The router appends to ``paths.llama_log_file()`` and keeps the text of the
current load in memory (the planner reads buffer sizes from it).  Nothing here loads
llama.cpp: the CLI sets ``echo_to_stderr`` before anything is loaded.

The file is rotated by size (``LOG_MAX_BYTES``, one old copy as ``llama.log.1``): a
load writes ~140 KB, and the log must not grow for ever.  A log file that cannot be
written (read-only home, full disk) is dropped quietly; generation never fails over it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import BinaryIO

from localchat.paths import ensure_dir, llama_log_file

LOG_MAX_BYTES = 2 * 2**20
LOG_BACKUP_COUNT = 1


class LlamaLogRouter:
    """llama.cpp's log lines in: the log file, the current capture, maybe stderr."""

    def __init__(self) -> None:
        self.echo_to_stderr = False
        self.to_file = True  # False: a process whose output is captured elsewhere
        self._lock = threading.Lock()
        self._capture: list[str] | None = None
        self._file: _LogFile | None = None
        self._file_failed = False
        self._native_file: BinaryIO | None = None  # fd 2 points here while C code runs
        self._native_lock = threading.Lock()
        self._native_depth = 0  # threads inside native_stderr(); the first redirects
        self._saved_fd = -1

    def write(self, text: str) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.append(text)
            self._to_file(text)
        stderr = sys.__stderr__
        if self.echo_to_stderr and stderr is not None:
            stderr.write(text)

    def on_native_line(self, text: bytes | None) -> None:
        """The C callback's body; it must never raise (ctypes would print "Exception
        ignored" and drop it; Ctrl-C can land here while a load runs off the main thread)."""
        with contextlib.suppress(BaseException):
            self.write((text or b"").decode("utf-8", errors="replace"))

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
    def native_stderr(self, *, enabled: bool = True) -> Iterator[None]:
        """Point fd 2 at the log file while native code runs: C code that ``fprintf``s to
        stderr bypasses the log callback (the first library load, the grammar parser).
        Threads may nest and overlap: the first in redirects, the last out restores."""
        log_file = self._native_log_file() if enabled else None
        if log_file is None:
            yield
            return
        with self._native_lock:
            if self._native_depth == 0:
                sys.stderr.flush()
                self._saved_fd = os.dup(2)
                os.dup2(log_file.fileno(), 2)
            self._native_depth += 1
        try:
            yield
        finally:
            with self._native_lock:
                self._native_depth -= 1
                if self._native_depth == 0:
                    os.dup2(self._saved_fd, 2)
                    os.close(self._saved_fd)

    def _native_log_file(self) -> BinaryIO | None:
        if self._native_file is None and not self._file_failed:
            try:
                path = llama_log_file()
                ensure_dir(path.parent)
                self._native_file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open
            except OSError:
                return None
        return self._native_file

    def _to_file(self, text: str) -> None:
        if self._file_failed or not self.to_file:
            return
        path = llama_log_file()  # LOCALCHAT_HOME may have moved it (tests do)
        if self._file is None or self._file.baseFilename != str(path.absolute()):
            if self._file is not None:
                self._file.close()
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

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUP_COUNT, encoding="utf-8", delay=True
        )
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True  # logging would print a traceback to stderr; we stop logging
