"""The generic fallback for formats with no tool syntax of their own (built-in formats,
huozi3, Reflection, base models, templates without a known call syntax).

The tools are described in the system turn, and the whole reply is one JSON object:
``{"tool_calls": [{"name": …, "arguments": {…}}]}`` to call tools, or ``{"response":
"…"}`` to answer (only the call form when a call is required).  Earlier calls and tool
results are written into the conversation the same way, so any template renders them.
The parser streams the ``response`` text as it is generated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from localchat.formats.gbnf import json_literal, json_object
from localchat.formats.tools.base import PreparedTool, ToolEvent, call_from_json
from localchat.llamacpp.grammar import GrammarBuilder
from localchat.types import Message, ToolCall

_KEY = re.compile(r'\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:\s*')
_CLOSE = re.compile(r"\s*\}")


def instructions(tools: Sequence[PreparedTool], answer_allowed: bool, parallel: bool) -> str:
    """The system-turn text that describes the tools and the reply's JSON shape."""
    listed = "\n".join(
        json.dumps(entry["function"], ensure_ascii=False)
        for entry in (tool.template_entry() for tool in tools)
    )
    count = "one or more calls" if parallel else "exactly one call"
    call = '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}'
    lines = [
        "You can call these tools; each one's parameters are a JSON schema:",
        listed,
        "",
        "Reply with a single JSON object and nothing else.",
        f"To call tools ({count}): {call}",
    ]
    if answer_allowed:
        lines.append('To answer the user directly: {"response": "<your answer>"}')
    else:
        lines.append("You must call a tool now.")
    return "\n".join(lines)


def generic_messages(messages: Sequence[Message], system_text: str | None) -> list[Message]:
    """The conversation with tool calls and results as plain turns, and ``system_text``
    joined to (or made) the system turn."""
    out: list[Message] = []
    for message in messages:
        if message.tool_calls:
            calls = [{"name": c.name, "arguments": dict(c.arguments)} for c in message.tool_calls]
            text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            content = f"{message.content}\n{text}" if message.content.strip() else text
            out.append(Message("assistant", content))
        elif message.role == "tool":
            result = {"name": message.name or "", "id": message.tool_call_id or ""}
            result["content"] = message.content
            line = json.dumps({"tool_response": result}, ensure_ascii=False)
            if out and out[-1].role == "user" and out[-1].content.startswith('{"tool_response"'):
                out[-1] = Message("user", f"{out[-1].content}\n{line}")
            else:
                out.append(Message("user", line))
        else:
            out.append(Message(message.role, message.content))
    if system_text is None:
        return out
    if out and out[0].role == "system":
        return [Message("system", f"{out[0].content}\n\n{system_text}"), *out[1:]]
    return [Message("system", system_text), *out]


def generic_grammar(tools: Sequence[PreparedTool], answer_allowed: bool, parallel: bool) -> str:
    """Call-or-answer (or call-only) JSON, arguments constrained by each tool's schema."""
    builder = GrammarBuilder()
    alternatives = [
        json_object([("name", json_literal(tool.spec.name)), ("arguments", arguments)])
        for tool, arguments in (
            (tool, tool.arguments_rule(builder, index)) for index, tool in enumerate(tools)
        )
    ]
    call = builder.rule("call", " | ".join(alternatives))
    more = f' ("," space {call})*' if parallel else ""
    calls = json_object([("tool_calls", f'"[" space {call}{more} "]" space')])
    if not answer_allowed:
        return builder.grammar(calls)
    text = builder.schema_rule("response", {"type": "string"})
    answer = json_object([("response", text)])
    return builder.grammar(f"{builder.rule('calls', calls)} | {builder.rule('answer', answer)}")


class GenericParser:
    """Streams ``{"response": "…"}``'s text as it decodes; reads ``{"tool_calls": …}``
    whole.  A reply that is neither comes back as text."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.raw = ""  # everything received
        self.mode = "start"  # start | response | after | calls | text
        self.string_at = 0  # where the response string's undecoded part begins

    def feed(self, piece: str) -> list[ToolEvent]:
        self.raw += piece
        if self.mode == "start":
            self._classify()
        if self.mode == "text":
            return [piece] if piece else []
        if self.mode == "response":
            return self._response()
        return []

    def finish(self) -> list[ToolEvent]:
        if self.mode in ("calls", "start"):
            calls = self._calls()
            return list(calls) if calls else ([self.raw] if self.raw.strip() else [])
        if self.mode == "response":
            return self._response()
        if self.mode != "after":
            return []
        closing = _CLOSE.match(self.raw, self.string_at)
        rest = self.raw[closing.end() if closing else self.string_at :]
        return [rest] if rest.strip() else []  # text after the object: no grammar held it

    def _classify(self) -> None:
        stripped = self.raw.lstrip()
        if stripped and not stripped.startswith("{"):
            self.mode = "text"
            return
        match = _KEY.match(self.raw)
        if match is None:
            return
        rest = self.raw[match.end() :]
        if match.group(1) == "response" and rest[:1] == '"':
            self.mode, self.string_at = "response", match.end() + 1
        elif match.group(1) == "tool_calls" or rest:
            self.mode = "calls"

    def _calls(self) -> list[ToolCall] | None:
        try:
            value = json.loads(self.raw)
        except ValueError:
            return None
        items = value.get("tool_calls") if isinstance(value, dict) else None
        if not isinstance(items, list) or not items:
            return None
        calls = [call_from_json(item, self.names) for item in items]
        return None if None in calls else [c for c in calls if c is not None]

    def _response(self) -> list[ToolEvent]:
        text, used, closed = _decode_string_prefix(self.raw[self.string_at :])
        self.string_at += used
        if closed:
            self.mode = "after"
        return [text] if text else []


def _decode_string_prefix(text: str) -> tuple[str, int, bool]:
    """The decoded start of a JSON string's body: (text, characters used, string closed).
    An escape cut off at the end of ``text`` is left for the next piece."""
    out: list[str] = []
    index = 0
    while index < len(text):
        ch = text[index]
        if ch == '"':
            return "".join(out), index + 1, True
        if ch != "\\":
            out.append(ch)
            index += 1
            continue
        length = 2
        if text[index + 1 : index + 2] == "u":
            high = text[index + 2 : index + 4].lower() in ("d8", "d9", "da", "db")
            length = 12 if high else 6  # a surrogate pair: decode both halves together
        if index + length > len(text):
            break
        try:
            out.append(json.loads(f'"{text[index : index + length]}"'))
        except ValueError:
            out.append(text[index : index + length])
        index += length
    return "".join(out), index, False
