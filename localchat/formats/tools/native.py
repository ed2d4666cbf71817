"""The tool-call syntaxes models were trained on, recognised from their chat templates.

- ``hermes`` (Qwen 2.5, Hermes 2/3, QwQ, Granite…): ``<tool_call>{"name": …, "arguments":
  …}</tool_call>``, one block per call.
- ``llama3`` (Llama 3.1-3.3): one ``{"name": …, "parameters": …}`` object as the whole
  reply, or after ``<|python_tag|>``.  The template renders one call per turn, so one call.
- ``mistral`` (Mistral Nemo): ``[TOOL_CALLS][{"name": …, "arguments": …, "id": …}, …]`` with
  9-character alphanumeric ids, which the template checks on every call and result.

Each gives the grammar for the calls (arguments constrained by each tool's schema), the
patterns where a call starts (for a lazy grammar under ``tool_choice: auto``) and a
streaming parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from localchat.formats.gbnf import json_literal, json_object, literal
from localchat.formats.tools.base import (
    PreparedTool,
    ToolCallParser,
    alphanumeric_id,
    call_from_json,
    pair_call_ids,
)
from localchat.formats.tools.stream import MarkerParser
from localchat.llamacpp.grammar import GrammarBuilder
from localchat.types import Message, ToolCall


class NativeSyntax:
    """One syntax; subclasses fill in the parts that differ."""

    name = ""
    render_special_tokens = False  # the call marker is a control token: keep its text
    parallel_calls = True
    arguments_key = "arguments"

    def detect(self, source: str) -> bool:
        raise NotImplementedError

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        """The conversation as this syntax's template needs it."""
        return list(messages)

    def call(self, tool: PreparedTool, arguments_rule: str) -> str:
        """The expression for one call of ``tool``."""
        name = json_literal(tool.spec.name)
        return json_object([("name", name), (self.arguments_key, arguments_rule)])

    def root(self, builder: GrammarBuilder, call: str, parallel: bool) -> str:
        raise NotImplementedError

    def triggers(self) -> tuple[str, ...]:
        raise NotImplementedError

    def parser(self, names: Sequence[str]) -> ToolCallParser:
        raise NotImplementedError


class Hermes(NativeSyntax):
    name = "hermes"
    start, end = "<tool_call>", "</tool_call>"

    def detect(self, source: str) -> bool:
        return (
            self.start in source
            and re.search(r'\\?"name\\?"\s*:', source) is not None
            and "<function=" not in source
            and "<arg_key>" not in source
        )

    def root(self, builder: GrammarBuilder, call: str, parallel: bool) -> str:
        start, end = literal(self.start), literal(self.end)
        block = builder.rule("tool-call", f'{start} "\\n"? {call} "\\n"? {end}')
        return f'{block} ("\\n"? {block})*' if parallel else block

    def triggers(self) -> tuple[str, ...]:
        return (re.escape(self.start),)

    def parser(self, names: Sequence[str]) -> ToolCallParser:
        def decode(block: str) -> list[ToolCall] | None:
            call = call_from_json(_loads(block), names)
            return [call] if call else None

        return MarkerParser([self.start], decode, end_marker=self.end)


class Llama3(NativeSyntax):
    name = "llama3"
    render_special_tokens = True
    parallel_calls = False
    arguments_key = "parameters"
    tag = "<|python_tag|>"

    def detect(self, source: str) -> bool:
        return (
            "<|start_header_id|>ipython<|end_header_id|>" in source
            and '"parameters"' in source
            and "<function=" not in source
        )

    def root(self, builder: GrammarBuilder, call: str, parallel: bool) -> str:
        return f"{literal(self.tag)}? {call}"

    def triggers(self) -> tuple[str, ...]:
        # The tag anywhere; or a reply that opens with the call object (as the grammar
        # spells it: at most one blank between tokens).
        return (re.escape(self.tag), r'^\s*(\{ ?"name" ?: ?")[\s\S]*$')

    def parser(self, names: Sequence[str]) -> ToolCallParser:
        def decode(block: str) -> list[ToolCall] | None:
            call = call_from_json(_loads(block), names, ("parameters", "arguments"))
            return [call] if call else None

        return MarkerParser([self.tag], decode, leading_json=True)


class MistralNemo(NativeSyntax):
    name = "mistral"
    render_special_tokens = True
    marker = "[TOOL_CALLS]"
    id_rule = '"\\"" [a-zA-Z0-9]{9} "\\"" space'

    def detect(self, source: str) -> bool:
        return self.marker in source and "[ARGS]" not in source

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        return pair_call_ids(messages, alphanumeric_id)

    def call(self, tool: PreparedTool, arguments_rule: str) -> str:
        name = json_literal(tool.spec.name)
        return json_object([("name", name), ("arguments", arguments_rule), ("id", self.id_rule)])

    def root(self, builder: GrammarBuilder, call: str, parallel: bool) -> str:
        more = f' ("," space {call})*' if parallel else ""
        return f'{literal(self.marker)} "[" {call}{more} "]"'

    def triggers(self) -> tuple[str, ...]:
        return (re.escape(self.marker),)

    def parser(self, names: Sequence[str]) -> ToolCallParser:
        def decode(block: str) -> list[ToolCall] | None:
            items = _loads(block)
            if not isinstance(items, list) or not items:
                return None
            calls = [call_from_json(item, names) for item in items]
            return None if None in calls else [c for c in calls if c is not None]

        return MarkerParser([self.marker], decode)


SYNTAXES: tuple[NativeSyntax, ...] = (MistralNemo(), Llama3(), Hermes())


def detect_syntax(template_source: str) -> NativeSyntax | None:
    """The native call syntax a chat template shows, or None (the generic fallback)."""
    return next((syntax for syntax in SYNTAXES if syntax.detect(template_source)), None)


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
