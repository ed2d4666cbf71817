"""The request log: one line per request, as Ollama and llama-server write them.

``POST /v1/chat/completions 200 1.84s model=gemma-3-270m prompt_tokens=12
completion_tokens=8``: method, path, status, duration, and for a generation the model
and its token counts.  Never a prompt, a reply, a query string or a header (keys live
there).  The lines go to stderr (``serve --quiet`` leaves them out there) and to the
server's log file, ``serve.log`` in localchat's log folder.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG = logging.getLogger("localchat.server.requests")
_SCOPE_KEY = "localchat.request_record"
_CLIENT_GONE = 499  # nginx's "client closed request": no response was started
MAX_LOG_BYTES = 5_000_000
MAX_FIELD_CHARS = 120


@dataclass
class RequestRecord:
    """What a handler learns about its request, for the log line."""

    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def request_record(request: Request) -> RequestRecord:
    """The request's record (a fresh one when the app runs without ``RequestLog``)."""
    record = request.scope.setdefault(_SCOPE_KEY, RequestRecord())
    assert isinstance(record, RequestRecord)
    return record


class RequestLog:
    """Logs one line when a request ends (a stream's, when the stream ends)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        scope[_SCOPE_KEY] = record
        started = time.perf_counter()
        status = _CLIENT_GONE

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException:
            status = 500
            raise
        finally:
            duration_s = time.perf_counter() - started
            LOG.info("%s", log_line(scope, status, duration_s, record))


def log_line(scope: Scope, status: int, duration_s: float, record: RequestRecord) -> str:
    method = _printable(str(scope.get("method", "")))
    path = _printable(str(scope.get("path", "")))
    parts = [method, path, str(status), f"{duration_s:.3f}s"]
    if record.model:
        parts.append(f"model={_printable(record.model)}")
    if record.prompt_tokens is not None:
        parts.append(f"prompt_tokens={record.prompt_tokens}")
    if record.completion_tokens is not None:
        parts.append(f"completion_tokens={record.completion_tokens}")
    return " ".join(parts)


def _printable(text: str) -> str:
    """One line, whatever a client sent: control characters escaped, length bounded."""
    escaped = text[:MAX_FIELD_CHARS].encode("unicode_escape").decode("ascii").replace(" ", "\\x20")
    return escaped + ("..." if len(text) > MAX_FIELD_CHARS else "")


class _NotRequestLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(LOG.name)


def configure_logging(quiet: bool, log_file: Path | None) -> None:
    """The server's log: stderr (without request lines when ``quiet``) and ``log_file``."""
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(logging.Formatter("localchat serve: %(message)s"))
    if quiet:
        to_stderr.addFilter(_NotRequestLines())
    handlers: list[logging.Handler] = [to_stderr]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            to_file = RotatingFileHandler(
                log_file, maxBytes=MAX_LOG_BYTES, backupCount=1, encoding="utf-8"
            )
        except OSError as exc:  # a read-only home: serve anyway, say so once
            print(f"localchat serve: no log file ({exc})", file=sys.stderr)
        else:
            to_file.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            handlers.append(to_file)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
