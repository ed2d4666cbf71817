"""``services.structured`` (one turn's prompt, grammar and reply splitter) and
``services.structured_api`` (functions as tools, parsed replies), with no model.

The chat formats and templates are real (built-in formats, the reference Qwen 2.5
template); the reply text is fed by hand, piece by piece, the way a stream arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from localchat.errors import EngineError, InvalidRequest
from localchat.formats import builtin_format
from localchat.formats.reflection import reflection_format
from localchat.formats.resolve import gguf_format
from localchat.protocol.tools import ReplyToolCall, ToolCallDelta
from localchat.services.structured import (
    ReplySplitter,
    check_structured_request,
    prepare_chat,
    prepare_completion,
    tool_support,
)
from localchat.services.structured_api import (
    collect_reply,
    parse_reply,
    reply_format_for,
    tool_specs,
)
from localchat.types import (
    GenerationStats,
    Message,
    ReplyFormat,
    SamplingParams,
    ToolCall,
    ToolSpec,
    ToolUse,
)

QWEN = Path(__file__).parents[1] / "fixtures" / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
WEATHER = ToolSpec(
    "get_weather",
    "Current weather",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ASK = [Message("user", "Weather in Paris?")]
SAMPLING = SamplingParams()


def qwen() -> Any:
    source = QWEN.read_text(encoding="utf-8")
    return gguf_format(source, {"tokenizer.chat_template": source})


def split(splitter: ReplySplitter, pieces: list[str]) -> list[Any]:
    events = [event for piece in pieces for event in splitter.feed(piece)]
    return events + splitter.finish()


def chunks(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- prompts and grammars --------------------------------------------------------------


def test_a_reply_format_is_a_grammar_and_switches_the_repetition_guard_off() -> None:
    fmt = builtin_format("chatml", "family default")
    plain = prepare_chat(fmt, ASK, SAMPLING)
    assert plain.sampling.grammar is None and plain.sampling.stop_on_repetition
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    shaped = prepare_chat(fmt, ASK, SAMPLING, ["END"], reply_format=ReplyFormat(schema))
    assert shaped.sampling.grammar and "root ::=" in shaped.sampling.grammar
    assert not shaped.sampling.stop_on_repetition and shaped.structured
    assert shaped.prompt.text == plain.prompt.text
    assert shaped.prompt.stop_strings[-1] == "END"  # the caller's stop strings are kept
    assert prepare_chat(fmt, ASK, SAMPLING, reply_format=ReplyFormat()).sampling.grammar


def test_native_tools_get_the_template_and_a_lazy_grammar_under_auto() -> None:
    prepared = prepare_chat(qwen(), ASK, SAMPLING, tool_use=ToolUse((WEATHER,)))
    assert "<tools>" in prepared.prompt.text
    assert prepared.sampling.grammar and prepared.sampling.grammar_triggers
    assert prepared.sampling.stop_on_repetition  # free text may come before a call
    required = prepare_chat(qwen(), ASK, SAMPLING, tool_use=ToolUse((WEATHER,), "required"))
    assert required.sampling.grammar and not required.sampling.grammar_triggers
    assert not required.sampling.stop_on_repetition
    none = prepare_chat(qwen(), ASK, SAMPLING, tool_use=ToolUse((WEATHER,), "none"))
    assert none.sampling.grammar is None and "<tools>" not in none.prompt.text


def test_tool_turns_in_the_history_render_without_tools_in_the_request() -> None:
    history = [
        *ASK,
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, "c1"),)),
        Message("tool", "31 C", tool_call_id="c1"),
    ]
    native = prepare_chat(qwen(), history, SAMPLING).prompt.text
    assert "<tool_call>" in native and "<tool_response>\n31 C" in native
    generic = prepare_chat(builtin_format("chatml", "family default"), history, SAMPLING)
    assert '{"tool_calls": [{"name": "get_weather"' in generic.prompt.text
    assert '{"tool_response": ' in generic.prompt.text


def test_none_with_a_reply_format_enforces_the_format() -> None:
    prepared = prepare_chat(
        qwen(), ASK, SAMPLING, reply_format=ReplyFormat(), tool_use=ToolUse((WEATHER,), "none")
    )
    assert prepared.sampling.grammar and not prepared.sampling.grammar_triggers


def test_what_cannot_be_run_is_refused_before_any_model() -> None:
    with pytest.raises(InvalidRequest, match="'multipleOf' at /properties/n"):
        bad = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}}
        check_structured_request(ReplyFormat(bad), None, "format")
    with pytest.raises(InvalidRequest, match=r"^format: not supported together .*tool_choice auto"):
        check_structured_request(ReplyFormat(), ToolUse((WEATHER,)), "format")
    with pytest.raises(InvalidRequest, match="no tools were given"):
        check_structured_request(None, ToolUse((), "required"))
    with pytest.raises(InvalidRequest, match="tool name"):
        check_structured_request(None, ToolUse((ToolSpec("bad name!"),)))
    with pytest.raises(InvalidRequest, match="not among the tools"):
        prepare_chat(qwen(), ASK, SAMPLING, tool_use=ToolUse((WEATHER,), "required", "other"))
    check_structured_request(ReplyFormat(), ToolUse((WEATHER,), "required"))  # calls, no answer


def test_a_raw_completion_takes_a_format_too() -> None:
    prompt, sampling = prepare_completion("x", SAMPLING, ["!"], reply_format=ReplyFormat())
    assert prompt.text == "x" and prompt.stop_strings == ("!",)
    assert sampling.grammar and not sampling.stop_on_repetition
    assert prepare_completion("x", SAMPLING)[1] == SAMPLING
    with pytest.raises(InvalidRequest, match=r"^format: .*with a chat"):
        prepare_completion("x", SAMPLING, reply_format=ReplyFormat(), passthrough=True)


def test_passthrough_sends_the_request_itself() -> None:
    fmt = builtin_format("chatml", "family default")
    use = ToolUse((WEATHER,), "required")
    prepared = prepare_chat(fmt, ASK, SAMPLING, reply_format=None, tool_use=use, passthrough=True)
    assert prepared.sampling.grammar is None
    assert prepared.prompt.tool_use == use and prepared.prompt.messages == tuple(ASK)
    block = (
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}</tool_call>'
    )
    (call,) = split(prepared.splitter(), chunks(block))
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo"}


# -- the reply splitter ----------------------------------------------------------------


def test_generic_calls_stream_apart_from_text_and_get_ids() -> None:
    fmt = builtin_format("chatml", "family default")
    prepared = prepare_chat(fmt, ASK, SAMPLING, tool_use=ToolUse((WEATHER,)))
    reply = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'
    splitter = prepared.splitter()
    (call,) = split(splitter, chunks(reply))
    assert call.name == "get_weather" and call.id.startswith("call_")
    answer = split(prepared.splitter(), chunks('{"response": "It is \\"sunny\\"."}'))
    assert "".join(part.text for part in answer) == 'It is "sunny".'
    assert len(answer) > 1  # the answer streams as it decodes


def test_thinking_stays_apart_from_the_answer_and_the_calls() -> None:
    """Reflection's thinking parser runs first; only its answer parts reach the tool-call
    parser, so a call written inside <thinking> is thinking, not a call."""
    fmt = reflection_format("models.toml")
    prepared = prepare_chat(fmt, ASK, SAMPLING, tool_use=ToolUse((WEATHER,), "required"))
    call = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'
    reply = f"<thinking>Maybe {call}</thinking>\n<output>{call}</output>"
    events = split(prepared.splitter(), chunks(reply, 5))
    thinking = [e for e in events if not isinstance(e, ToolCall) and e.kind == "thinking"]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert "".join(part.text for part in thinking) == f"Maybe {call}"
    assert [c.arguments for c in calls] == [{"city": "Oslo"}]
    assert all(isinstance(e, ToolCall) or e.kind == "thinking" for e in events)


def test_a_call_the_model_wrote_an_id_for_keeps_it() -> None:
    splitter = ReplySplitter(lambda: None, lambda: _Fixed([ToolCall("f", {}, "abc123xyz")]))
    assert split(splitter, ["x"]) == [ToolCall("f", {}, "abc123xyz")]


class _Fixed:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def feed(self, piece: str) -> list[Any]:
        return []

    def finish(self) -> list[Any]:
        return self.events


def test_collect_reply_and_its_message() -> None:
    fmt = builtin_format("chatml", "family default")
    prepared = prepare_chat(fmt, ASK, SAMPLING, tool_use=ToolUse((WEATHER,), "required"))
    reply = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'
    collected = collect_reply(prepared.splitter(), chunks(reply), GenerationStats())
    assert collected.text == "" and [c.name for c in collected.calls] == ["get_weather"]
    assert collected.as_message().tool_calls == tuple(collected.calls)


# -- the Python API's helpers ----------------------------------------------------------


def test_python_functions_become_tools() -> None:
    def get_time(zone: str, twenty_four_hours: bool = True, *rest: int) -> str:
        """The time now in a time zone.

        Longer text that is not the description."""
        return ""

    (spec,) = tool_specs([get_time])
    assert spec.name == "get_time" and spec.description == "The time now in a time zone."
    assert spec.parameters["required"] == ["zone"]
    assert spec.parameters["properties"]["twenty_four_hours"]["type"] == "boolean"
    assert tool_specs([WEATHER]) == (WEATHER,)
    prepared = prepare_chat(
        builtin_format("chatml", "family default"), ASK, SAMPLING, tool_use=ToolUse((spec,))
    )
    assert prepared.sampling.grammar  # its schema converts


class Point(BaseModel):
    x: int
    y: int


def test_parse_reply_gives_dicts_or_models_and_says_why_not() -> None:
    done = GenerationStats(finish_reason="stop")
    assert parse_reply('{"x": 1, "y": 2}', Point, done) == Point(x=1, y=2)
    assert parse_reply('{"a": 1}', None, done) == {"a": 1}
    schema = Point.model_json_schema()
    assert parse_reply('{"x": 1, "y": 2}', schema, done) == {"x": 1, "y": 2}
    with pytest.raises(EngineError, match="stopped at 7 tokens, before its JSON"):
        parse_reply('{"x": 1', Point, GenerationStats(completion_tokens=7, finish_reason="length"))
    with pytest.raises(EngineError, match="does not match the schema"):
        parse_reply('{"x": "one", "y": 2}', schema, done)  # a server that did not enforce it
    with pytest.raises(EngineError, match="does not match Point"):
        parse_reply('{"x": 1}', Point, done)
    assert reply_format_for(Point) == ReplyFormat(schema, "Point")
    assert reply_format_for(None) == ReplyFormat()


def test_show_words_for_tools() -> None:
    assert tool_support(qwen()) == "native (hermes syntax)"
    assert tool_support(builtin_format("gemma", "family default")) == "generic JSON fallback"


def test_reply_models_write_openai_shapes() -> None:
    call = ToolCall("get_weather", {"city": "Oslo"}, "call_1")
    assert ReplyToolCall.from_call(call).model_dump() == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    head, arguments = ToolCallDelta.pieces(2, call)
    assert head.model_dump() == {"index": 2, "id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    assert arguments.model_dump() == {"index": 2, "function": {"arguments": '{"city": "Oslo"}'}}
