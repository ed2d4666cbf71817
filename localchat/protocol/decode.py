"""Bytes off the wire into a checked request model; every problem is one ``InvalidRequest``.

JSON is parsed by pydantic's strict parser, not ``json``: a lone UTF-16 surrogate
(``"\\ud800"``), invalid UTF-8, ``NaN`` and nesting deeper than a couple of hundred
levels are refused at once, in bounded time and memory, instead of reaching the engine
(where a surrogate cannot be encoded) or Python's recursion limit.
"""

from __future__ import annotations

from typing import TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from localchat.errors import InvalidRequest
from localchat.protocol.base import RequestModel

RequestT = TypeVar("RequestT", bound=RequestModel)
ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json(raw: bytes | str, what: str = "the request body") -> object:
    """``raw`` as a JSON value, or ``InvalidRequest`` saying why it is not valid JSON."""
    try:
        return pydantic_core.from_json(raw or b"null", allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidRequest(f"{what} is not valid JSON ({exc})") from exc


def parse_request(raw: bytes, schema: type[RequestT]) -> RequestT:
    """The body as ``schema``: valid JSON, an object, every field valid, nothing refused."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    request = validate(schema, data)
    request.check_supported()
    return request


def validate(schema: type[ModelT], data: object) -> ModelT:
    """``schema.model_validate(data)`` with the first problem as one ``InvalidRequest`` line."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc)) from exc


def validation_message(exc: ValidationError) -> str:
    """``field.path: what is wrong`` for the most specific error pydantic found (of a
    union's alternatives, the one that got furthest into the value)."""
    found = exc.errors(include_url=False)
    first = max(found, key=lambda error: len(_field_path(error.get("loc", ()))))
    where = ".".join(_field_path(first.get("loc", ()))).replace(".[", "[") or "body"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = "unknown field (this server models every documented field; see README)"
    return f"{where}: {message}"


def _field_path(parts: tuple[int | str, ...]) -> list[str]:
    """The loc's field names and list indexes, without the names pydantic gives the
    members of a union ("str", "list[ContentPart]", "NamedToolChoice")."""
    path = []
    for part in parts:
        if isinstance(part, int):
            path.append(f"[{part}]")
        elif not ("[" in part or part[:1].isupper() or part in _TYPE_NAMES):
            path.append(part)
    return path


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "json-or-python"})
