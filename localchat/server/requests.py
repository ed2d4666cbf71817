"""What both APIs do with a request before generating: read and check the body (through
``localchat.protocol``), name the model, and check the prompt's size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from localchat import services
from localchat.errors import InvalidRequest, RequestTooLarge
from localchat.protocol import SERVER_DEFAULT_MODEL, parse_request, required_model_name
from localchat.protocol.base import RequestModel
from localchat.server.request_log import request_record
from localchat.services import ModelRef

RequestT = TypeVar("RequestT", bound=RequestModel)
DEFAULT_MODEL = ModelRef(text="", kind="catalog")  # the server's default model (settings.toml)


async def read_body(request: Request, schema: type[RequestT]) -> RequestT:
    """The body as ``schema``, checked; any problem is one ``InvalidRequest`` line."""
    try:
        raw = await request.body()
    except ClientDisconnect as exc:  # gone, or cut off by the request timeout
        raise InvalidRequest("the client went away before sending the whole body") from exc
    return parse_request(raw, schema)


def resolve_model(request: Request, name: str, field: str = "model") -> ModelRef:
    """A request's model name as a ``ModelRef``: catalog, cache or owner/repo, never a
    path; ``"default"`` is the server's default model, and no name at all is a 400.

    Ollama clients add ``:latest``; it means "the planner's choice" here.
    """
    text = required_model_name(name, field)
    request_record(request).model = text
    if text.lower().endswith(":latest"):
        text = required_model_name(text[: -len(":latest")], field)
    if text.lower() == SERVER_DEFAULT_MODEL:
        return DEFAULT_MODEL
    ref, _ = services.resolve_model(text, allow_paths=False)
    return ref


def check_prompt_size(texts: Sequence[str], max_chars: int) -> None:
    total = sum(len(text) for text in texts)
    if total > max_chars:
        raise RequestTooLarge(
            f"the prompt is {total} characters; this server takes at most {max_chars}",
            hint="start the server with a larger --max-prompt-chars",
        )
