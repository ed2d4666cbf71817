"""The Python API's side of structured output and tool calls: tools given as Python
functions, a schema given as a pydantic model, and a finished reply read back as a parsed
object (``LoadedModel.structured``) or as text and calls (``LoadedModel.call_tools``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

from localchat.errors import EngineError
from localchat.formats.structured import schema_dict
from localchat.services.structured import THINKING_KINDS, ReplyEvent, ReplySplitter
from localchat.types import GenerationStats, Message, ReplyFormat, ToolCall, ToolSpec


@dataclass
class ToolReply:
    """A turn with tools, whole: the answer's text, the calls, and the stats."""

    text: str
    calls: list[ToolCall]
    stats: GenerationStats
    thinking: str = ""

    def as_message(self) -> Message:
        """The assistant turn to put back in the conversation, before the tool results."""
        return Message("assistant", self.text, tuple(self.calls))


def collect_reply(
    splitter: ReplySplitter, pieces: Iterable[str], stats: GenerationStats
) -> ToolReply:
    """Run ``pieces`` (a ``TextStream``) through ``splitter`` into a ``ToolReply``."""
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for piece in pieces:
        _sort(splitter.feed(piece), text, thinking, calls)
    _sort(splitter.finish(), text, thinking, calls)
    return ToolReply("".join(text), calls, stats, "".join(thinking))


def _sort(
    events: Sequence[ReplyEvent], text: list[str], thinking: list[str], calls: list[ToolCall]
) -> None:
    for event in events:
        if isinstance(event, ToolCall):
            calls.append(event)
        elif event.kind in THINKING_KINDS:
            thinking.append(event.text)
        else:
            text.append(event.text)


def tool_specs(tools: Sequence[ToolSpec | Callable[..., Any]]) -> tuple[ToolSpec, ...]:
    """Tools as ``ToolSpec``s: a Python function is described by its name, its docstring's
    first paragraph and its parameters' annotations (as JSON schema, through pydantic)."""
    return tuple(tool if isinstance(tool, ToolSpec) else _function_spec(tool) for tool in tools)


def _function_spec(function: Callable[..., Any]) -> ToolSpec:
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (annotation, default)
    try:
        hints = get_type_hints(function)
    except (NameError, TypeError):  # an annotation that does not resolve: keep it as written
        hints = {}
    for name, hint in hints.items():
        if name in fields:
            fields[name] = (hint, fields[name][1])
    model = create_model(f"{function.__name__}_arguments", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    doc = inspect.getdoc(function) or ""
    description = doc.split("\n\n")[0].strip()
    return ToolSpec(function.__name__, description, schema)


def reply_format_for(schema: Mapping[str, Any] | type[BaseModel] | None) -> ReplyFormat:
    """A schema (a JSON-schema mapping or a pydantic model class) as a ``ReplyFormat``;
    None: any JSON object."""
    if schema is None:
        return ReplyFormat()
    name = schema.__name__ if isinstance(schema, type) else "reply"
    return ReplyFormat(schema_dict(schema, "schema"), name)


def parse_reply(
    text: str, schema: Mapping[str, Any] | type[BaseModel] | None, stats: GenerationStats
) -> Any:
    """A finished structured reply as a dict (or ``schema``'s pydantic model).

    ``EngineError`` when it is not the JSON asked for: cut short by ``max_tokens``, the
    context or a stop string, or (from a server that does not enforce formats) invalid."""
    try:
        value = json.loads(text)
    except ValueError:
        raise EngineError(_cut_short(stats), hint=_cut_hint(stats)) from None
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(value)
        except ValidationError as exc:
            raise EngineError(f"the reply does not match {schema.__name__}: {exc}") from None
    if not isinstance(value, dict):
        raise EngineError("the reply is JSON but not an object")
    if schema is not None:
        _validate(value, schema)
    return value


def _validate(value: Any, schema: Mapping[str, Any]) -> None:
    from jsonschema import exceptions, validators  # ~80 ms to import: only when needed

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls(schema).validate(value)
    except exceptions.ValidationError as exc:
        raise EngineError(f"the reply does not match the schema: {exc.message}") from None


def _cut_short(stats: GenerationStats) -> str:
    if stats.finish_reason == "length":
        return (
            f"the reply stopped at {stats.completion_tokens} tokens, before its JSON was complete"
        )
    return f"the reply ended ({stats.finish_reason}) before its JSON was complete"


def _cut_hint(stats: GenerationStats) -> str | None:
    if stats.finish_reason == "length":
        return "raise max_tokens (ask: --max-tokens) or the context size"
    if stats.finish_reason == "stop":
        return "a stop string may have cut it: check the stop strings"
    return None
