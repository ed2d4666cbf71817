"""``tool_prompt``: one turn with tools, for any chat format.

``tool_choice`` follows OpenAI (and llama-server):

- ``"none"``: the model may not call; the tools stay out of the prompt (a template that
  lists them invites call syntax the reply could then only show as text), no grammar.
- ``"auto"``: native syntaxes get a lazy grammar that starts at the call marker, so the
  model writes text or calls; the generic fallback's reply is the call-or-answer object.
- ``"required"``: the grammar applies from the first token: only calls.
- ``FunctionChoice(name)``: as required, with that one tool.

``parallel=False`` allows exactly one call (Llama 3.x templates render one call per
turn, so they get one call either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from localchat.errors import InvalidRequest
from localchat.formats.base import ChatFormat
from localchat.formats.jinja import SandboxedTemplate
from localchat.formats.tools.base import (
    FunctionChoice,
    PlainParser,
    PreparedTool,
    ToolChoice,
    ToolPrompt,
    chosen_tools,
    prepare_tools,
)
from localchat.formats.tools.generic import (
    GenericParser,
    generic_grammar,
    generic_messages,
    instructions,
)
from localchat.formats.tools.native import NativeSyntax, detect_syntax
from localchat.llamacpp.grammar import GrammarBuilder
from localchat.types import Message, ToolSpec

_CHOICES = ("none", "auto", "required")


def native_syntax(fmt: ChatFormat) -> NativeSyntax | None:
    """The call syntax the format's own template shows (None: no native syntax; the
    built-in formats have none)."""
    renderer = fmt.renderer
    if isinstance(renderer, SandboxedTemplate):
        return detect_syntax(renderer.source)
    return None


def supports_native_tools(fmt: ChatFormat) -> bool:
    """Whether the model's template has a tool-call syntax of its own (for ``show``)."""
    return native_syntax(fmt) is not None


def tool_syntax(fmt: ChatFormat) -> str:
    """``hermes``, ``llama3``, ``mistral`` or ``generic``."""
    syntax = native_syntax(fmt)
    return syntax.name if syntax else "generic"


def tool_prompt(
    fmt: ChatFormat,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice = "auto",
    parallel: bool = True,
) -> ToolPrompt:
    """The prompt, grammar, grammar triggers and reply parser for one turn with tools.

    Raises ``InvalidRequest`` for a bad tool (name, duplicate, parameters' schema), a
    ``tool_choice`` naming a tool that is not given, or a call required without tools."""
    if not isinstance(tool_choice, FunctionChoice) and tool_choice not in _CHOICES:
        raise InvalidRequest(
            f"tool_choice must be none, auto, required or a function, not {tool_choice!r}"
        )
    prepared = prepare_tools(tools)
    if not prepared:
        if tool_choice not in ("none", "auto"):
            raise InvalidRequest("tool_choice requires a call, but no tools were given")
        tool_choice = "none"
    syntax = native_syntax(fmt)
    if tool_choice == "none":
        return _without_tools(fmt, messages, syntax)
    allowed = chosen_tools(prepared, tool_choice)
    if syntax is None:
        return _generic(fmt, messages, allowed, tool_choice == "auto", parallel)
    return _native(fmt, syntax, messages, prepared, allowed, tool_choice, parallel)


def _without_tools(
    fmt: ChatFormat, messages: Sequence[Message], syntax: NativeSyntax | None
) -> ToolPrompt:
    if syntax is not None and isinstance(fmt.renderer, SandboxedTemplate):
        text = fmt.renderer.render(syntax.messages(messages), True)
        prompt = fmt.spec(text, messages)
    else:
        prompt = fmt.prompt(generic_messages(messages, None))
    return ToolPrompt(prompt, None, (), PlainParser, "none")


def _generic(
    fmt: ChatFormat,
    messages: Sequence[Message],
    tools: list[PreparedTool],
    answer_allowed: bool,
    parallel: bool,
) -> ToolPrompt:
    system_text = instructions(tools, answer_allowed, parallel)
    prompt = fmt.prompt(generic_messages(messages, system_text))
    grammar = generic_grammar(tools, answer_allowed, parallel)
    names = [tool.spec.name for tool in tools]
    return ToolPrompt(prompt, grammar, (), partial(GenericParser, names), "generic")


def _native(
    fmt: ChatFormat,
    syntax: NativeSyntax,
    messages: Sequence[Message],
    tools: list[PreparedTool],
    allowed: list[PreparedTool],
    choice: ToolChoice,
    parallel: bool,
) -> ToolPrompt:
    assert isinstance(fmt.renderer, SandboxedTemplate)
    entries = [tool.template_entry() for tool in tools]
    text = fmt.renderer.render(syntax.messages(messages), True, tools=entries)
    prompt = fmt.spec(text, messages, render_special_tokens=syntax.render_special_tokens)
    builder = GrammarBuilder()
    calls = [syntax.call(tool, tool.arguments_rule(builder, i)) for i, tool in enumerate(allowed)]
    call = builder.rule("call", " | ".join(calls))
    grammar = builder.grammar(syntax.root(builder, call, parallel and syntax.parallel_calls))
    triggers = syntax.triggers() if choice == "auto" else ()
    names = [tool.spec.name for tool in allowed]
    return ToolPrompt(prompt, grammar, triggers, partial(syntax.parser, names), syntax.name)
