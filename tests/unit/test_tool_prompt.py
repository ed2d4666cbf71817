"""``tool_prompt``: tool_choice (none/auto/required/named), parallel calls, bad tools and
choices refused clearly, and the generic fallback rendered through every built-in format
(tools in the system turn, earlier calls and results as plain turns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localchat.errors import InvalidRequest
from localchat.formats.base import ChatFormat
from localchat.formats.builtin import LLAMA3_BOS
from localchat.formats.resolve import BUILTIN_FORMATS, builtin_format, gguf_format
from localchat.formats.tools import FunctionChoice, supports_native_tools, tool_prompt, tool_syntax
from localchat.types import Message, ToolCall, ToolSpec

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates"

WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec("get_time", "The time", {})
ASK = [Message("user", "Weather in Paris?")]
HISTORY = [
    Message("system", "Be brief."),
    Message("user", "Weather in Paris and the time?"),
    Message(
        "assistant",
        "",
        tool_calls=(
            ToolCall("get_weather", {"city": "Paris"}, "c1"),
            ToolCall("get_time", {}, "c2"),
        ),
    ),
    Message("tool", "sunny", tool_call_id="c1", name="get_weather"),
    Message("tool", "12:00", tool_call_id="c2", name="get_time"),
]


def qwen() -> ChatFormat:
    source = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    return gguf_format(source, {"tokenizer.chat_template": source})


def test_auto_gives_a_lazy_grammar_that_starts_at_the_marker() -> None:
    result = tool_prompt(qwen(), ASK, [WEATHER, TIME])
    assert result.syntax == "hermes"
    assert result.grammar_triggers == ("<tool_call>",)
    assert result.grammar is not None and '"\\"get_time\\""' in result.grammar


def test_required_and_named_apply_the_grammar_from_the_first_token() -> None:
    required = tool_prompt(qwen(), ASK, [WEATHER, TIME], "required")
    assert required.grammar_triggers == () and required.grammar is not None
    named = tool_prompt(qwen(), ASK, [WEATHER, TIME], FunctionChoice("get_time"))
    assert named.grammar is not None and named.grammar_triggers == ()
    assert '"\\"get_time\\""' in named.grammar and "get_weather" not in named.grammar
    assert list(
        named.parser_factory().feed(
            '<tool_call>{"name": "get_weather", "arguments": {"city": "x"}}</tool_call>'
        )
    ) == ['<tool_call>{"name": "get_weather", "arguments": {"city": "x"}}</tool_call>']


def test_parallel_false_allows_one_call() -> None:
    one = tool_prompt(qwen(), ASK, [WEATHER], parallel=False).grammar
    many = tool_prompt(qwen(), ASK, [WEATHER], parallel=True).grammar
    assert one is not None and many is not None
    assert "root ::= tool-call\n" in one + "\n"
    assert 'root ::= tool-call ("\\n"? tool-call)*' in many


def test_none_or_no_tools_means_plain_text() -> None:
    for result in (tool_prompt(qwen(), ASK, [WEATHER], "none"), tool_prompt(qwen(), ASK, [])):
        assert result.grammar is None and result.grammar_triggers == ()
        assert result.parser_factory().feed("<tool_call>x") == ["<tool_call>x"]
        assert "<tools>" not in result.prompt.text


@pytest.mark.parametrize(
    ("tools", "choice", "words"),
    [
        ([], "required", "no tools were given"),
        ([], FunctionChoice("get_weather"), "no tools were given"),
        ([WEATHER], FunctionChoice("get_time"), "'get_time', which is not among the tools"),
        ([WEATHER], "sometimes", "tool_choice must be none, auto, required or a function"),
        ([WEATHER, WEATHER], "auto", "two tools are named 'get_weather'"),
        ([ToolSpec("get weather")], "auto", "tool name 'get weather'"),
        ([ToolSpec("x" * 65)], "auto", "1 to 64"),
        ([ToolSpec(f"f{i}") for i in range(129)], "auto", "at most 128"),
        (
            [ToolSpec("f", parameters={"type": "string"})],
            "auto",
            "parameters must describe an object",
        ),
        (
            [
                ToolSpec(
                    "f",
                    parameters={
                        "type": "object",
                        "properties": {"n": {"type": "number", "multipleOf": 2}},
                    },
                )
            ],
            "auto",
            "tools[0] (f) parameters: 'multipleOf' at /properties/n",
        ),
    ],
)
def test_bad_tools_and_choices_are_one_clear_error(tools: list, choice: object, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        tool_prompt(qwen(), ASK, tools, choice)  # type: ignore[arg-type]
    assert words in caught.value.one_line()


# ---- the generic fallback -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_FORMATS))
def test_every_built_in_format_renders_tools_and_their_history(name: str) -> None:
    fmt = builtin_format(name, "models.toml")
    assert not supports_native_tools(fmt) and tool_syntax(fmt) == "generic"
    result = tool_prompt(fmt, HISTORY, [WEATHER, TIME])
    text = result.prompt.text
    assert result.syntax == "generic" and result.grammar_triggers == ()
    assert json.dumps(WEATHER.parameters) in text  # the tool's schema, in the system turn
    assert '{"response": "<your answer>"}' in text
    assert (
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]}'
        in text
    )
    assert '{"tool_response": {"name": "get_weather", "id": "c1", "content": "sunny"}}' in text
    assert '{"tool_response": {"name": "get_time", "id": "c2", "content": "12:00"}}' in text
    if name != "raw":  # raw joins message texts and has no system turn to keep
        assert "Be brief." in text


def test_generic_required_allows_only_calls() -> None:
    fmt = builtin_format("chatml", "models.toml")
    auto = tool_prompt(fmt, ASK, [WEATHER])
    required = tool_prompt(fmt, ASK, [WEATHER], "required", parallel=False)
    assert auto.grammar is not None and required.grammar is not None
    assert "answer" in auto.grammar and "answer" not in required.grammar
    assert '{"response"' not in required.prompt.text
    assert "exactly one call" in required.prompt.text


def test_generic_without_tools_still_renders_tool_history() -> None:
    # huozi3's roles are 系统/用户/助手 only: a "tool" turn must become a plain turn.
    fmt = builtin_format("huozi3", "models.toml")
    result = tool_prompt(fmt, HISTORY, [], "auto")
    assert "tool_response" in result.prompt.text and result.grammar is None


def test_gemma_alternation_holds_with_merged_tool_results() -> None:
    fmt = builtin_format("gemma", "models.toml")
    text = tool_prompt(fmt, HISTORY, [WEATHER, TIME]).prompt.text
    assert text.count("<start_of_turn>user") == 2 and text.count("<start_of_turn>model") == 2


def test_reflection_and_llama_builtin_keep_their_headers() -> None:
    for name in ("reflection", "llama3.1"):
        text = tool_prompt(builtin_format(name, "models.toml"), ASK, [WEATHER]).prompt.text
        assert text.startswith(LLAMA3_BOS + "<|start_header_id|>system<|end_header_id|>")
        assert "You can call these tools" in text
