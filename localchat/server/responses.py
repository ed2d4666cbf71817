"""Protocol models as HTTP responses: JSON, NDJSON lines, SSE events, and error bodies in
the shape of the API a path belongs to (OpenAI's under ``/v1``, Ollama's elsewhere)."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from localchat.protocol.errors import http_status, ollama_error, openai_error, openai_error_for
from localchat.protocol.ollama import ErrorReply

NDJSON = "application/x-ndjson"


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def json_response(body: BaseModel, status: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def ndjson_line(body: BaseModel) -> str:
    return body.model_dump_json() + "\n"


def sse_event(body: BaseModel) -> dict[str, str]:
    """One server-sent event for ``sse_starlette``: ``data: <json>``."""
    return {"data": body.model_dump_json()}


def error_response(path: str, exc: BaseException) -> Response:
    """``exc`` as its status, in the body shape of ``path``'s API."""
    body = openai_error(exc) if is_openai_path(path) else ollama_error(exc)
    return json_response(body, http_status(exc))


def status_response(path: str, status: int, message: str) -> Response:
    """A bare HTTP error (no route, wrong method) in the body shape of ``path``'s API."""
    if is_openai_path(path):
        return json_response(openai_error_for(status, message), status)
    return json_response(ErrorReply(error=message), status)
