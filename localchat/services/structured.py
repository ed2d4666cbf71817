"""Structured output and tool calls: a chat turn's prompt, grammar and reply parser.

``prepare_chat`` turns one request (messages, sampling, a ``ReplyFormat`` and/or a
``ToolUse``) into what the backend runs: the prompt (with the tools, in the model's own
call syntax or the generic JSON fallback), the sampling with the grammar the sampler
enforces, and a ``ReplySplitter`` factory that splits the reply into answer text,
thinking and ``ToolCall``s as it streams.  A model a server runs (``passthrough``) gets
the request itself: the server enforces it, and the remote backend writes the calls it
sends back as ``<tool_call>`` blocks for the splitter to read.

``check_structured_request`` refuses a bad schema or tool before any model loads.  The
Python API's side (functions as tools, parsed replies) is ``structured_api``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from localchat.errors import InvalidRequest
from localchat.formats import ChatFormat, ReplyParser, ReplyPart
from localchat.formats.base import PartKind
from localchat.formats.structured import (
    check_json_schema,
    grammar_for_json_object,
    grammar_for_json_schema,
)
from localchat.formats.tools import (
    FunctionChoice,
    ToolCallParser,
    ToolChoice,
    native_syntax,
    tool_prompt,
)
from localchat.formats.tools.base import PlainParser, prepare_tools
from localchat.formats.tools.native import Hermes
from localchat.types import (
    Message,
    PromptSpec,
    ReplyFormat,
    SamplingParams,
    ToolCall,
    ToolUse,
)

THINKING_KINDS = frozenset({"thinking", "reflection"})
SCHEMA_WHERE = "response format schema"  # how a refusal names the schema by default
ReplyEvent = ReplyPart | ToolCall  # what a ``ReplySplitter`` hands on


@dataclass(frozen=True)
class PreparedChat:
    """One chat turn ready to run: ``prompt`` and ``sampling`` go to the backend;
    ``splitter()`` is a fresh parser for the reply."""

    prompt: PromptSpec
    sampling: SamplingParams
    splitter: Callable[[], ReplySplitter]
    structured: bool = False  # the whole reply is JSON, by grammar (a format or a call)


def check_structured_request(
    reply_format: ReplyFormat | None, tool_use: ToolUse | None, where: str = SCHEMA_WHERE
) -> None:
    """``InvalidRequest`` for what no model can run: a schema keyword the grammar cannot
    enforce, a bad tool, or a format and optional calls together (see ``prepare_chat``).
    ``where`` names the schema in the message (the request's field)."""
    if reply_format is not None and reply_format.schema is not None:
        check_json_schema(reply_format.schema, where)
    if tool_use is None:
        return
    prepare_tools(list(tool_use.tools))
    if not tool_use.tools and (tool_use.function is not None or tool_use.choice == "required"):
        raise InvalidRequest("tool_choice requires a call, but no tools were given")
    if reply_format is not None and _may_answer(tool_use):
        field = where.split(".")[0]  # the format's field, where names its schema
        raise InvalidRequest(
            f"{field}: not supported together with tools the model may call or not "
            "(tool_choice auto)",
            hint='send tool_choice "none" or "required", or the format on the final turn',
        )


def tool_support(fmt: ChatFormat) -> str:
    """How this format's model calls tools, for ``show``: its own syntax (native), or the
    generic fallback (the tools described in the system turn, calls as one JSON object)."""
    syntax = native_syntax(fmt)
    return f"native ({syntax.name} syntax)" if syntax else "generic JSON fallback"


def has_native_tools(fmt: ChatFormat) -> bool:
    return native_syntax(fmt) is not None


def grammar_bound(reply_format: ReplyFormat | None, tool_use: ToolUse | None) -> bool:
    """Whether the whole reply is JSON by grammar: a format, or a call that must be made.
    The repetition guard stays off for such a reply: an array of equal items is data, not
    a loop, and a reply cut short is not JSON anyway; its grammar (``maxLength``,
    ``maxItems``) and ``max_tokens`` bound it."""
    return reply_format is not None or _calls_only(tool_use)


def prepare_chat(
    fmt: ChatFormat,
    messages: Sequence[Message],
    sampling: SamplingParams,
    stop: Sequence[str] = (),
    *,
    reply_format: ReplyFormat | None = None,
    tool_use: ToolUse | None = None,
    passthrough: bool = False,
) -> PreparedChat:
    """The prompt, sampling (with its grammar) and reply splitter for one turn.

    With tools the model must call (``required`` or a named function) a response format
    does not apply (calls are not the answer); with optional calls it is refused
    (``check_structured_request``).  Earlier tool calls and results in ``messages`` are rendered
    through the model's template, or written as the generic fallback's JSON turns."""
    check_structured_request(reply_format, tool_use)
    bound = grammar_bound(reply_format, tool_use)
    if bound:
        sampling = replace(sampling, stop_on_repetition=False)
    if passthrough:
        prompt = fmt.prompt(list(messages))
        prompt = replace(prompt, reply_format=reply_format, tool_use=tool_use)
        names = [tool.name for tool in tool_use.tools] if tool_use else []
        calls = partial(Hermes().parser, names) if names else PlainParser
        return _prepared(fmt, prompt, sampling, stop, calls, bound)
    if (tool_use is not None and tool_use.tools) or _has_tool_turns(messages):
        return _with_tools(fmt, messages, sampling, stop, reply_format, tool_use, bound)
    prompt = fmt.prompt(list(messages))
    if reply_format is not None:
        sampling = replace(sampling, grammar=reply_grammar(reply_format), grammar_triggers=())
    return _prepared(fmt, prompt, sampling, stop, PlainParser, bound)


def prepare_completion(
    text: str,
    sampling: SamplingParams,
    stop: Sequence[str] = (),
    *,
    reply_format: ReplyFormat | None = None,
    passthrough: bool = False,
) -> tuple[PromptSpec, SamplingParams]:
    """A raw completion (no chat format): the prompt as it is, and the sampling with the
    format's grammar when one is asked for."""
    prompt = PromptSpec(text=text, stop_strings=tuple(stop))
    if reply_format is None:
        return prompt, sampling
    if passthrough:
        raise InvalidRequest(
            "format: a server running the model takes a format with a chat, not a raw prompt",
            hint="send the prompt as a chat (/api/chat, or /api/generate without raw)",
        )
    grammar = reply_grammar(reply_format)
    return prompt, replace(sampling, grammar=grammar, grammar_triggers=(), stop_on_repetition=False)


def render_chat(fmt: ChatFormat, messages: Sequence[Message]) -> str:
    """The prompt text ``messages`` render to, generation prompt appended; earlier tool
    calls and results as the model sees them (``show --render``)."""
    return prepare_chat(fmt, messages, SamplingParams()).prompt.text


def reply_grammar(reply_format: ReplyFormat) -> str:
    """The GBNF grammar for ``reply_format``."""
    if reply_format.schema is None:
        return grammar_for_json_object()
    return grammar_for_json_schema(reply_format.schema, SCHEMA_WHERE)


def _with_tools(
    fmt: ChatFormat,
    messages: Sequence[Message],
    sampling: SamplingParams,
    stop: Sequence[str],
    reply_format: ReplyFormat | None,
    tool_use: ToolUse | None,
    bound: bool,
) -> PreparedChat:
    tools = list(tool_use.tools) if tool_use is not None else []
    choice = _tool_choice(tool_use) if tool_use is not None else "none"
    parallel = tool_use.parallel if tool_use is not None else True
    turn = tool_prompt(fmt, messages, tools, choice, parallel)
    grammar, triggers = turn.grammar, turn.grammar_triggers
    if grammar is None and reply_format is not None:
        grammar, triggers = reply_grammar(reply_format), ()
    sampling = replace(sampling, grammar=grammar, grammar_triggers=triggers)
    return _prepared(fmt, turn.prompt, sampling, stop, turn.parser_factory, bound)


def _prepared(
    fmt: ChatFormat,
    prompt: PromptSpec,
    sampling: SamplingParams,
    stop: Sequence[str],
    calls: Callable[[], ToolCallParser],
    bound: bool,
) -> PreparedChat:
    prompt = replace(prompt, stop_strings=(*prompt.stop_strings, *stop))
    splitter = partial(ReplySplitter, fmt.reply_parser, calls)
    return PreparedChat(prompt, sampling, splitter, bound)


def _tool_choice(tool_use: ToolUse) -> ToolChoice:
    if tool_use.function is not None:
        return FunctionChoice(tool_use.function)
    return tool_use.choice


def _may_answer(tool_use: ToolUse) -> bool:
    """The model may answer instead of calling (``auto`` with tools to call)."""
    return bool(tool_use.tools) and tool_use.function is None and tool_use.choice == "auto"


def _calls_only(tool_use: ToolUse | None) -> bool:
    if tool_use is None or not tool_use.tools:
        return False
    return tool_use.function is not None or tool_use.choice == "required"


def _has_tool_turns(messages: Sequence[Message]) -> bool:
    return any(message.tool_calls or message.role == "tool" for message in messages)


class ReplySplitter:
    """A reply as it streams, split into ``ReplyPart``s (thinking kinds apart from the
    answer) and ``ToolCall``s.  The format's thinking parser runs first; the answer's
    text then goes through the tool-call parser.  Calls without an id get ``call_…``."""

    def __init__(
        self,
        thinking: Callable[[], ReplyParser | None],
        calls: Callable[[], ToolCallParser],
    ) -> None:
        self.thinking = thinking()
        self.calls = calls()
        self.kind: PartKind = "text"  # the kind of the answer text fed last

    def feed(self, piece: str) -> list[ReplyEvent]:
        if self.thinking is None:
            return self._answer(self.calls.feed(piece))
        return self._parts(self.thinking.feed(piece))

    def finish(self) -> list[ReplyEvent]:
        events = self._parts(self.thinking.finish()) if self.thinking is not None else []
        return events + self._answer(self.calls.finish())

    def _parts(self, parts: Sequence[ReplyPart]) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        for part in parts:
            if part.kind in THINKING_KINDS:
                events.append(part)
            else:
                self.kind = part.kind
                events.extend(self._answer(self.calls.feed(part.text)))
        return events

    def _answer(self, items: Sequence[str | ToolCall]) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        for item in items:
            if isinstance(item, ToolCall):
                events.append(item if item.id else replace(item, id=new_call_id()))
            elif item:
                events.append(ReplyPart(self.kind, item))
        return events


def new_call_id() -> str:
    """OpenAI's shape of a call id, for a call the model wrote without one."""
    return f"call_{uuid.uuid4().hex[:24]}"
