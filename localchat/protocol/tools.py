"""Tool definitions and structured-output formats, as OpenAI and Ollama send them, and
their conversion to ``types.ToolSpec`` / ``types.ReplyFormat``; and the calls replies
carry (OpenAI: arguments as a JSON string, streamed as deltas; Ollama: as an object).
Both APIs' ``tools[].function`` have one shape; custom tools are refused
(``protocol.refusals``).
"""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import Field, JsonValue, model_validator

from localchat.protocol.base import JsonObject, ReplyModel, RequestModel, is_none
from localchat.types import ReplyFormat, ToolCall, ToolSpec


class FunctionDefinition(RequestModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: JsonObject | None = None  # a JSON schema
    strict: bool | None = None

    def to_spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description or "", self.parameters or {})


class CustomTool(RequestModel):
    name: str
    description: str | None = None
    format: JsonObject | None = None  # free text, or a grammar


class ToolDefinition(RequestModel):
    """A function tool (``function``) or a custom one (``custom``, free-form input)."""

    type: Literal["function", "custom"]
    function: FunctionDefinition | None = None
    custom: CustomTool | None = None

    @model_validator(mode="after")
    def _holds_its_type(self) -> Self:
        if getattr(self, self.type) is None:
            raise ValueError(f'a "{self.type}" tool needs a "{self.type}" field')
        return self

    def to_spec(self) -> ToolSpec:
        if self.function is not None:
            return self.function.to_spec()
        custom = self.custom or CustomTool(name="")
        return ToolSpec(custom.name, custom.description or "")


class NamedFunction(RequestModel):
    name: str


class NamedToolChoice(RequestModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(RequestModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: JsonObject | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(RequestModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> Self:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError('a "json_schema" format needs a "json_schema" field')
        return self

    def to_reply_format(self) -> ReplyFormat | None:
        """None for plain text; a ``ReplyFormat`` for JSON (``strict`` or not, the
        grammar enforces the schema: a reply that does not match cannot be sampled)."""
        if self.type == "text":
            return None
        if self.type == "json_object" or self.json_schema is None:
            return ReplyFormat()
        named = self.json_schema
        schema = dict(named.schema_) if named.schema_ is not None else None
        return ReplyFormat(schema, named.name)


# -- calls in replies --------------------------------------------------------------------


class CalledFunction(ReplyModel):
    name: str = ""
    arguments: str = "{}"  # a JSON object, as a string (OpenAI's convention)


class ReplyToolCall(ReplyModel):
    """A call in a reply: ``id``, ``type`` "function", the function's name and arguments."""

    id: str = ""
    type: str = "function"
    function: CalledFunction = Field(default_factory=CalledFunction)

    @classmethod
    def from_call(cls, call: ToolCall) -> ReplyToolCall:
        return cls(id=call.id, function=CalledFunction(name=call.name, arguments=_json(call)))


class FunctionDelta(ReplyModel):
    name: str | None = Field(default=None, exclude_if=is_none)
    arguments: str | None = Field(default=None, exclude_if=is_none)


class ToolCallDelta(ReplyModel):
    """A streamed piece of call ``index``: its id, type and name come in the first
    piece, its arguments' text in the pieces after (a client joins them)."""

    index: int = 0
    id: str | None = Field(default=None, exclude_if=is_none)
    type: str | None = Field(default=None, exclude_if=is_none)
    function: FunctionDelta = Field(default_factory=FunctionDelta)

    @classmethod
    def pieces(cls, index: int, call: ToolCall) -> list[ToolCallDelta]:
        """The deltas that stream ``call``: its head, then its arguments."""
        head = cls(
            index=index,
            id=call.id,
            type="function",
            function=FunctionDelta(name=call.name, arguments=""),
        )
        return [head, cls(index=index, function=FunctionDelta(arguments=_json(call)))]


class OllamaCalledFunction(ReplyModel):
    index: int = 0
    name: str = ""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)  # an object, not a string


class OllamaReplyToolCall(ReplyModel):
    id: str | None = Field(default=None, exclude_if=is_none)
    function: OllamaCalledFunction = Field(default_factory=OllamaCalledFunction)

    @classmethod
    def from_call(cls, index: int, call: ToolCall) -> OllamaReplyToolCall:
        function = OllamaCalledFunction(index=index, name=call.name, arguments=dict(call.arguments))
        return cls(id=call.id or None, function=function)


def _json(call: ToolCall) -> str:
    return json.dumps(dict(call.arguments), ensure_ascii=False)
