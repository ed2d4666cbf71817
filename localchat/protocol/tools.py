"""Tool definitions and structured-output formats, as OpenAI and Ollama send them.

Parsed now, refused for now (``protocol.refusals``): the tool-calling and structured-output
work switches them on.  Both APIs' ``tools[].function`` have this shape.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from localchat.protocol.base import JsonObject, RequestModel
from localchat.types import ToolSpec


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
