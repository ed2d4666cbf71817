"""The one map from localchat's errors to HTTP statuses, and the two APIs' error bodies.

A status is looked up along the exception's class hierarchy, so a class added to
``localchat.errors`` later gets its parent's status.  Choices worth a word:

- ``DoesNotFit`` → 400: the model cannot fit this machine even with every other model
  unloaded (the pool unloads idle ones first), so retrying will not help; SDKs retry 5xx.
  When busy models hold the memory the pool raises ``ServerBusy`` (503) instead.
- ``NotEnoughDisk`` → 507 (Insufficient Storage), other download failures → 502: the hub,
  not the client, failed.  ``AuthRequired`` (a gated repo) → 403.
"""

from __future__ import annotations

from typing import Any

from localchat import errors

HTTP_STATUS: dict[type[BaseException], int] = {
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
    errors.EngineError: 500,
    errors.LocalchatError: 500,
}

# OpenAI's error "type" per status (what its SDK and clients read).
_OPENAI_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    503: "server_overloaded",
}

_CODES: dict[type[BaseException], str] = {
    errors.ModelNotFound: "model_not_found",
    errors.DoesNotFit: "model_does_not_fit",
    errors.ServerBusy: "server_busy",
    errors.Unauthorized: "invalid_api_key",
    errors.RequestTooLarge: "request_too_large",
}


def http_status(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_message(exc: BaseException) -> str:
    if isinstance(exc, errors.LocalchatError):
        return exc.one_line()
    return f"internal error: {type(exc).__name__}"


def openai_error_body(exc: BaseException) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
    status = http_status(exc)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    return {
        "error": {
            "message": error_message(exc),
            "type": _OPENAI_TYPE.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }


def ollama_error_body(exc: BaseException) -> dict[str, Any]:
    """``{"error": "message"}`` as Ollama sends it."""
    return {"error": error_message(exc)}
