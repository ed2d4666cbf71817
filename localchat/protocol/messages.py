"""The one chat-message parser: OpenAI's and Ollama's wire messages as ``types.Message``.

Used by both APIs of the server, by the remote-engine client (the other direction) and
by ``localchat show MODEL --render FILE``.  Everything OpenAI documents is parsed: roles
system, user, assistant, developer (a system turn), tool; content as a string or a list
of parts (image, audio and file parts are recognised, so they can be refused by name);
an assistant's ``tool_calls`` (arguments as a JSON string) and a tool turn's
``tool_call_id``.  Ollama's messages carry ``images``, ``thinking``, ``tool_calls``
(arguments as an object) and ``tool_name``.  What is parsed but not yet done is refused
in one place, ``protocol.refusals`` (the deprecated ``function`` role and ``function_call``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from localchat.errors import InvalidRequest
from localchat.protocol import refusals
from localchat.protocol.base import JsonObject, RequestModel
from localchat.protocol.decode import parse_json, validation_message
from localchat.types import Message, Role, ToolCall

# -- OpenAI ----------------------------------------------------------------------------


class ImageUrl(RequestModel):
    url: str
    detail: Literal["auto", "low", "high", "original"] | None = None


class InputAudio(RequestModel):
    data: str
    format: str


class FileRef(RequestModel):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class ContentPart(RequestModel):
    """One part of a message's content: its ``type`` names the field that holds it.
    Text (and an assistant's earlier refusal) is read; images, audio and files are
    recognised so that ``protocol.refusals`` can refuse them by name."""

    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    image_url: ImageUrl | None = None
    input_audio: InputAudio | None = None
    file: FileRef | None = None
    refusal: str | None = None
    prompt_cache_breakpoint: JsonObject | None = None  # harmless: caching, not output

    @model_validator(mode="after")
    def _holds_its_type(self) -> Self:
        if getattr(self, self.type) is None:
            raise ValueError(f'a "{self.type}" part needs a "{self.type}" field')
        return self


class FunctionCall(RequestModel):
    name: str
    arguments: str  # a JSON object, as a string (OpenAI's convention)


class WireToolCall(RequestModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AudioRef(RequestModel):
    id: str


_ROLE_AS: dict[str, Role] = {  # the wire's roles as localchat's
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",  # the deprecated form of a tool result
}
_ROLES = ("system", "user", "assistant", "developer", "tool", "function")


class ChatMessage(RequestModel):
    """One message of an OpenAI chat request (every documented field of every role)."""

    role: Literal["system", "user", "assistant", "developer", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None  # a participant's name: no effect on the prompt
    tool_calls: list[WireToolCall] | None = None  # assistant
    tool_call_id: str | None = None  # tool
    refusal: str | None = None  # assistant: no effect on the prompt
    reasoning_content: str | None = None  # assistant, our own reply field echoed back
    audio: AudioRef | None = None  # assistant: an earlier audio reply
    function_call: FunctionCall | None = None  # assistant, deprecated form of tool_calls

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, role: object) -> object:
        if role not in _ROLES:
            raise ValueError(f"role must be {', '.join(_ROLES[:-1])} or {_ROLES[-1]}")
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _string_or_parts(cls, content: object) -> object:
        if content is not None and not isinstance(content, str | list):
            raise ValueError("content must be a string or a list of content parts")
        return content

    def text(self) -> str:
        """The text of ``content``: its text parts, joined."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""

    def to_message(self, where: str) -> Message:
        role = _ROLE_AS.get(self.role, "user")
        calls = tuple(
            _tool_call(call, f"{where}.tool_calls[{index}]")
            for index, call in enumerate(self.tool_calls or ())
        )
        name = self.name if role == "tool" else None
        return Message(role, self.text(), calls, self.tool_call_id, name)


def _tool_call(call: WireToolCall, where: str) -> ToolCall:
    arguments = parse_json(call.function.arguments, f"{where}.function.arguments")
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}.function.arguments: must be a JSON object")
    return ToolCall(call.function.name, arguments, call.id)


def openai_messages(messages: Sequence[ChatMessage], field: str = "messages") -> list[Message]:
    """Checked wire messages as ``Message`` objects (refused features raise here)."""
    refusals.refuse_openai_messages(messages, field)
    return [message.to_message(f"{field}[{i}]") for i, message in enumerate(messages)]


def to_openai_messages(messages: Sequence[Message]) -> list[ChatMessage]:
    """The other direction, for a client: ``Message`` objects as OpenAI wire messages."""
    wire = []
    for message in messages:
        calls = [
            WireToolCall(
                id=call.id,
                function=FunctionCall(name=call.name, arguments=_json_text(call.arguments)),
            )
            for call in message.tool_calls
        ]
        wire.append(
            ChatMessage(
                role=message.role,
                content=message.content,
                tool_calls=calls or None,
                tool_call_id=message.tool_call_id,
                name=message.name,
            )
        )
    return wire


def _json_text(value: object) -> str:
    return TypeAdapter(object).dump_json(value).decode("utf-8")


_MESSAGE_LIST = TypeAdapter(list[ChatMessage])


def parse_messages(items: object) -> list[Message]:
    """OpenAI-style ``[{"role": ..., "content": ...}, ...]`` (already JSON-decoded) as
    ``Message`` objects: the parser ``show --render`` uses, with the server's rules."""
    if not isinstance(items, list) or not items:
        raise InvalidRequest("messages must be a non-empty JSON list of {role, content} objects")
    try:
        wire = _MESSAGE_LIST.validate_python(items)
    except ValidationError as exc:
        raise InvalidRequest(f"messages{validation_message(exc)}") from exc
    return openai_messages(wire)


# -- Ollama ----------------------------------------------------------------------------


class OllamaFunctionCall(RequestModel):
    name: str
    arguments: JsonObject = Field(default_factory=dict)
    index: int | None = None


class OllamaToolCall(RequestModel):
    id: str | None = None  # Ollama's replies carry one; clients send the turn back with it
    function: OllamaFunctionCall


class OllamaMessage(RequestModel):
    """One message of Ollama's ``/api/chat``."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None  # base64 images
    thinking: str | None = None  # an assistant turn's thinking, sent back as history
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None  # a tool turn: the function it answers

    def to_message(self) -> Message:
        calls = tuple(
            ToolCall(call.function.name, call.function.arguments, call.id or "")
            for call in self.tool_calls or ()
        )
        return Message(self.role, self.content, calls, None, self.tool_name)


def ollama_messages(messages: Sequence[OllamaMessage], field: str = "messages") -> list[Message]:
    refusals.refuse_ollama_messages(messages, field)
    return [message.to_message() for message in messages]


__all__ = [
    "ChatMessage",
    "ContentPart",
    "OllamaMessage",
    "ollama_messages",
    "openai_messages",
    "parse_messages",
    "to_openai_messages",
]
