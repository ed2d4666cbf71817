"""The one map between localchat's errors and HTTP: statuses, OpenAI error codes, the two
APIs' error bodies, and the way back for clients (``error_from_response``).

A status or a code is looked up along the exception's class hierarchy, so a class added
to ``localchat.errors`` later gets its parent's.  The code table is used in both
directions: the server writes ``code``, the remote-engine client reads it back as the
same class (so ``ask`` through a server exits as ``ask --local`` would).  Choices worth a
word:

- ``DoesNotFit`` → 400: the model cannot fit this machine even with every other model
  unloaded (the pool unloads idle ones first), so retrying will not help; SDKs retry 5xx.
  When busy models hold the memory the pool raises ``ServerBusy`` (503) instead.
- ``NotEnoughDisk`` → 507 (Insufficient Storage), other download failures → 502: the hub,
  not the client, failed.  ``AuthRequired`` (a gated repo) → 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from localchat import errors
from localchat.errors import LocalchatError
from localchat.protocol.decode import parse_json
from localchat.protocol.ollama import ErrorReply
from localchat.protocol.openai import ErrorDetail, ErrorResponse

HTTP_STATUS: Mapping[type[BaseException], int] = {
    errors.InvalidRequest: 400,
    errors.ConfigError: 400,
    errors.TemplateRejected: 400,
    errors.RequestTooLarge: 413,
    errors.Unauthorized: 401,
    errors.ModelNotFound: 404,
    errors.DoesNotFit: 400,
    errors.ServerBusy: 503,
    errors.AuthRequired: 403,
    errors.NotEnoughDisk: 507,
    errors.DownloadFailed: 502,
    errors.RemoteEngineError: 502,
    errors.CorruptModelFile: 500,
    errors.ContextOverflow: 400,  # the request's fault: retrying it will not help
    errors.EngineError: 500,
    errors.LocalchatError: 500,
}

# OpenAI's error ``code``; read back by clients (the reverse of this same table).
ERROR_CODES: Mapping[type[BaseException], str] = {
    errors.ModelNotFound: "model_not_found",
    errors.DoesNotFit: "model_does_not_fit",
    errors.ServerBusy: "server_busy",
    errors.Unauthorized: "invalid_api_key",
    errors.RequestTooLarge: "request_too_large",
    errors.TemplateRejected: "template_rejected",
    errors.InvalidRequest: "invalid_request",
    errors.AuthRequired: "auth_required",
    errors.NotEnoughDisk: "not_enough_disk",
    errors.DownloadFailed: "download_failed",
    errors.CorruptModelFile: "corrupt_model_file",
    errors.ContextOverflow: "context_length_exceeded",  # OpenAI's code for it
    errors.EngineError: "engine_failed",
}
_CLASS_BY_CODE: Mapping[str, type[LocalchatError]] = {
    code: cls for cls, code in ERROR_CODES.items() if issubclass(cls, LocalchatError)
}

# OpenAI's error ``type`` per status (what its SDK and clients show).
_OPENAI_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    503: "server_overloaded",
}

# Another server's error without a code we know: what its status means to a client.
_CLASS_BY_STATUS: Mapping[int, type[LocalchatError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthorized,
    403: errors.Unauthorized,
    404: errors.ModelNotFound,
    413: errors.RequestTooLarge,
    422: errors.InvalidRequest,
    429: errors.ServerBusy,
    503: errors.ServerBusy,
}
MAX_MESSAGE_CHARS = 300


ValueT = TypeVar("ValueT")


def _along_hierarchy(
    exc: BaseException, table: Mapping[type[BaseException], ValueT]
) -> ValueT | None:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def http_status(exc: BaseException) -> int:
    status = _along_hierarchy(exc, HTTP_STATUS)
    return 500 if status is None else status


def error_code(exc: BaseException) -> str | None:
    return _along_hierarchy(exc, ERROR_CODES)


def error_message(exc: BaseException) -> str:
    """The one line a client sees; an unexpected error never shows its text."""
    if isinstance(exc, LocalchatError):
        return exc.one_line()
    return f"internal error: {type(exc).__name__}"


def openai_error(exc: BaseException) -> ErrorResponse:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
    return openai_error_for(http_status(exc), error_message(exc), error_code(exc))


def openai_error_for(status: int, message: str, code: str | None = None) -> ErrorResponse:
    kind = _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return ErrorResponse(error=ErrorDetail(message=message, type=kind, code=code))


def ollama_error(exc: BaseException) -> ErrorReply:
    """``{"error": "message"}`` as Ollama sends it."""
    return ErrorReply(error=error_message(exc))


def error_from_response(status: int, body: bytes | str, source: str = "") -> LocalchatError:
    """A server's error reply (OpenAI's, Ollama's or plain text) as the localchat error it
    stands for: by its ``code`` when the table knows it, else by its status."""
    message, code = _message_and_code(body)
    error_class = _CLASS_BY_CODE.get(code or "") or _CLASS_BY_STATUS.get(
        status, errors.RemoteEngineError
    )
    where = f"HTTP {status} from {source}" if source else f"HTTP {status}"
    return error_class(f"{message or 'no message'} ({where})")


def error_from_stream(error: object, source: str = "") -> LocalchatError:
    """An ``{"error": ...}`` event in the middle of a stream, as a localchat error."""
    message, code = _message_and_code_of(error)
    error_class = _CLASS_BY_CODE.get(code or "", errors.RemoteEngineError)
    where = f" ({source})" if source else ""
    return error_class(f"the engine failed: {message}{where}")


def _message_and_code(body: bytes | str) -> tuple[str, str | None]:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = parse_json(text)
    except LocalchatError:
        return _one_line(text), None
    if isinstance(data, dict):
        found = data.get("error", data.get("detail"))
        if found:
            return _message_and_code_of(found)
    return _one_line(text), None


def _message_and_code_of(error: object) -> tuple[str, str | None]:
    if isinstance(error, dict):
        code = error.get("code")
        return _one_line(str(error.get("message") or "")), str(code) if code else None
    return _one_line(str(error)), None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_MESSAGE_CHARS]
