"""The error log: tracebacks of unexpected errors, for bug reports; the user sees one line.

The CLI's last-resort handler and the TUI both write here.  Nothing in this module may
raise: it runs while something else has already gone wrong (a read-only
``LOCALCHAT_HOME``, a full disk).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from localchat.paths import log_dir

ERRORS_LOG_NAME = "errors.log"
MAX_LOG_BYTES = 1_000_000  # past this the log starts over (the old one kept as errors.log.1)
ONE_LINE_CHARS = 300


def errors_log_path() -> Path:
    return log_dir() / ERRORS_LOG_NAME


def write_traceback(error: BaseException, *, context: str = "") -> Path | None:
    """Append ``error``'s traceback (and what was being done) to the error log.

    Returns the log's path, or None when it could not be written.
    """
    try:
        path = errors_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        _rotate(path)
        with open(path, "a", encoding="utf-8") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp}{' while ' + context if context else ''}\n")
            traceback.print_exception(error, file=log)
    except Exception:
        return None
    return path


def one_line(error: BaseException, limit: int = ONE_LINE_CHARS) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
