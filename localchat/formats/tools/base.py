"""What every tool-call syntax shares: the request's tool choice, the prompt the lead hands
the engine (``ToolPrompt``), the streaming parser's interface, and the tools checked once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from localchat.errors import InvalidRequest
from localchat.formats.structured import NormalizedSchema, check_json_schema
from localchat.llamacpp.grammar import GrammarBuilder
from localchat.types import Message, PromptSpec, ToolCall, ToolSpec

# A piece of a reply: text for the user, or a call the model made.
ToolEvent = str | ToolCall

_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_TOOLS = 128  # OpenAI's limit; each tool's schema is checked and converted
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class FunctionChoice:
    """``tool_choice`` naming one function: the model must call exactly that one."""

    name: str


ToolChoice = Literal["none", "auto", "required"] | FunctionChoice


class ToolCallParser(Protocol):
    """Splits a streamed reply into text and tool calls.

    ``feed`` returns what became certain with this piece (text held back may be the start
    of a call marker); ``finish`` flushes the rest at the end of the reply.  A call the
    parser cannot read comes back as text, never dropped.
    """

    def feed(self, piece: str) -> list[ToolEvent]: ...

    def finish(self) -> list[ToolEvent]: ...


@dataclass(frozen=True)
class ToolPrompt:
    """Everything the engine needs for a turn with tools.

    ``grammar``: GBNF for the sampler (None: free text).  ``grammar_triggers``: regex
    patterns (ECMAScript, as llama.cpp's lazy grammar takes them): free text until one
    matches, then the grammar from the pattern's first capture group (or the match).
    Empty with a grammar: the grammar applies from the first token.  ``syntax`` names the
    call syntax (``hermes``, ``llama3``, ``mistral``, ``generic``, or ``none``).
    """

    prompt: PromptSpec
    grammar: str | None
    grammar_triggers: tuple[str, ...]
    parser_factory: Callable[[], ToolCallParser]
    syntax: str


@dataclass(frozen=True)
class PreparedTool:
    """A tool checked once: its spec as the model's template shows it, and its arguments'
    schema normalised for the grammar."""

    spec: ToolSpec
    parameters: Mapping[str, Any]
    arguments: NormalizedSchema

    def template_entry(self) -> dict[str, Any]:
        """The tool as Hugging Face templates expect it."""
        function = {
            "name": self.spec.name,
            "description": self.spec.description,
            "parameters": dict(self.parameters),
        }
        return {"type": "function", "function": function}

    def arguments_rule(self, builder: GrammarBuilder, index: int) -> str:
        return builder.schema_rule(f"tool{index}-args", self.arguments.body, self.arguments.defs)


def prepare_tools(tools: Sequence[ToolSpec]) -> list[PreparedTool]:
    """Each tool's name checked and its parameters' schema normalised (``InvalidRequest``
    names the tool and the keyword)."""
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"{len(tools)} tools: at most {MAX_TOOLS} may be given")
    seen: set[str] = set()
    prepared = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not _TOOL_NAME.fullmatch(tool.name):
            raise InvalidRequest(
                f"{where}: tool name {tool.name!r} must be 1 to 64 of A-Z a-z 0-9 _ . : -"
            )
        if tool.name in seen:
            raise InvalidRequest(f"{where}: two tools are named {tool.name!r}")
        seen.add(tool.name)
        parameters = dict(tool.parameters) or dict(_NO_PARAMETERS)
        kind = parameters.get("type", "object")
        if kind != "object":
            raise InvalidRequest(f"{where} ({tool.name}): parameters must describe an object")
        schema = {**parameters, "type": "object"}
        checked = check_json_schema(schema, f"{where} ({tool.name}) parameters")
        prepared.append(PreparedTool(tool, parameters, checked))
    return prepared


def chosen_tools(tools: list[PreparedTool], choice: ToolChoice) -> list[PreparedTool]:
    """The tools a call may name under ``choice`` (all, or the one named)."""
    if not isinstance(choice, FunctionChoice):
        return tools
    named = [tool for tool in tools if tool.spec.name == choice.name]
    if not named:
        raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not among the tools")
    return named


def call_from_json(
    value: Any, names: Sequence[str], argument_keys: tuple[str, ...] = ("arguments",)
) -> ToolCall | None:
    """A ``{"name": ..., "arguments": {...}}`` object as a ``ToolCall`` (None: not a call to
    one of ``names``).  Arguments given as a JSON string are decoded."""
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments: Any = {}
    for key in argument_keys:
        if key in value:
            arguments = value[key]
            break
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    call_id = value.get("id")
    return ToolCall(str(value["name"]), arguments, call_id if isinstance(call_id, str) else "")


def pair_call_ids(messages: Sequence[Message], make_id: Callable[[str], str]) -> list[Message]:
    """Messages whose calls and tool results carry matching ids, as templates that check
    them (Mistral) need: each id mapped through ``make_id``; a call without one gets one
    from its position; a result without ``tool_call_id`` answers the oldest open call of
    its tool (Ollama sends only ``tool_name``)."""
    pending: list[ToolCall] = []
    out = []
    counter = 0
    for message in messages:
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                counter += 1
                calls.append(replace(call, id=make_id(call.id or f"call-{counter}-{call.name}")))
            pending.extend(calls)
            message = replace(message, tool_calls=tuple(calls))
        elif message.role == "tool":
            message = replace(message, tool_call_id=_answered_id(message, pending, make_id))
        out.append(message)
    return out


def _answered_id(message: Message, pending: list[ToolCall], make_id: Callable[[str], str]) -> str:
    if message.tool_call_id:
        wanted = make_id(message.tool_call_id)
        pending[:] = [call for call in pending if call.id != wanted]
        return wanted
    for call in pending:
        if message.name is None or call.name == message.name:
            pending.remove(call)
            return call.id
    return make_id(f"result-{message.name or ''}")


def alphanumeric_id(value: str, length: int = 9) -> str:
    """``value`` if it is ``length`` letters and digits, else a stable id of that shape."""
    if len(value) == length and value.isascii() and value.isalnum():
        return value
    digest = int.from_bytes(hashlib.sha256(value.encode()).digest(), "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for _ in range(length):
        digest, index = divmod(digest, len(alphabet))
        out.append(alphabet[index])
    return "".join(out)


class PlainParser:
    """No tools this turn: the reply is all text."""

    def feed(self, piece: str) -> list[ToolEvent]:
        return [piece] if piece else []

    def finish(self) -> list[ToolEvent]:
        return []
