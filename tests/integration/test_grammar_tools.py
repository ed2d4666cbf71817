"""Tool-call grammars on real llama.cpp: for each native syntax and the generic fallback,
the grammar sampler accepts well-formed calls and refuses bad ones (token by token, on
Gemma's vocabulary); lazy grammars wait for their trigger pattern; and the Gemma 3 270M
base model constrained by them emits calls the parser reads and whose arguments validate
against the tool's schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat.formats.base import ChatFormat
from localchat.formats.resolve import builtin_format, gguf_format
from localchat.formats.tools import FunctionChoice, ToolPrompt, tool_prompt
from localchat.types import Message, ToolCall, ToolSpec

pytestmark = pytest.mark.llama
llama_cpp = pytest.importorskip("llama_cpp")
jsonschema = pytest.importorskip("jsonschema")

from tests.fixtures.gbnf_oracle import GrammarOracle, generate  # noqa: E402
from tests.fixtures.gbnf_oracle import oracle as oracle  # noqa: E402  (the fixture)

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates"
TEMPLATE_FILES = {
    "hermes": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "llama3": "meta-llama-3.1-instruct.jinja",
    "mistral": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
}

WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
)
ALARM = ToolSpec(
    "set_alarm",
    "Set an alarm",
    {
        "type": "object",
        "properties": {
            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            "minute": {"type": "integer", "minimum": 0, "maximum": 59},
            "label": {"type": "string", "maxLength": 30},
        },
        "required": ["hour", "minute"],
    },
)
TOOLS = {tool.name: tool for tool in (WEATHER, ALARM)}
ASK = [
    Message("system", "You are a helpful assistant."),
    Message("user", "What is the weather in Paris?"),
]


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> Iterator[llama_cpp.Llama]:
    llm = llama_cpp.Llama(model_path=str(gemma_path), n_ctx=2048, verbose=False)
    yield llm
    llm.close()


def template(syntax: str) -> ChatFormat:
    source = (TEMPLATES / TEMPLATE_FILES[syntax]).read_text(encoding="utf-8")
    bos = {"llama3": "<|begin_of_text|>", "mistral": "<s>"}.get(syntax, "")
    return gguf_format(source, {"tokenizer.chat_template": source, "tokenizer.bos_token": bos})


def parse(result: ToolPrompt, text: str) -> list[str | ToolCall]:
    parser = result.parser_factory()
    events = [*parser.feed(text), *parser.finish()]
    return [e for e in events if not (isinstance(e, str) and not e.strip())]


def assert_valid_calls(calls: list[str | ToolCall], count: int | None = None) -> None:
    tool_calls = [c for c in calls if isinstance(c, ToolCall)]
    assert tool_calls, calls
    if count is not None:
        assert len(tool_calls) == count, calls
    for call in tool_calls:
        jsonschema.validate(dict(call.arguments), dict(TOOLS[call.name].parameters))


# ---- what each grammar accepts -------------------------------------------------------

PARIS = '{"name": "get_weather", "ARGS": {"city": "Paris", "unit": "celsius"}}'
ALARM_7 = '{"name": "set_alarm", "ARGS": {"hour": 7, "minute": 30}}'
CALLS = {
    "hermes": (
        lambda *c: "\n".join(
            f"<tool_call>\n{x.replace('ARGS', 'arguments')}\n</tool_call>" for x in c
        ),
        "<tool_call>",
    ),
    "llama3": (lambda *c: "".join(x.replace("ARGS", "parameters") for x in c), ""),
    "mistral": (
        lambda *c: (
            "[TOOL_CALLS]["
            + ", ".join(x.replace("ARGS", "arguments")[:-1] + ', "id": "a1b2c3d4e"}' for x in c)
            + "]"
        ),
        "[TOOL_CALLS]",
    ),
}


@pytest.mark.parametrize("syntax", list(CALLS))
def test_required_grammar_accepts_calls_and_refuses_bad_ones(
    oracle: GrammarOracle, syntax: str
) -> None:
    write, _ = CALLS[syntax]
    one = tool_prompt(template(syntax), ASK, [WEATHER, ALARM], "required", parallel=False)
    assert one.grammar is not None
    assert oracle.accepts(one.grammar, write(PARIS))
    assert oracle.accepts(one.grammar, write(ALARM_7))
    bad = [
        PARIS.replace("get_weather", "get_weathr"),  # no such tool
        PARIS.replace('"celsius"', '"kelvin"'),  # outside the enum
        PARIS.replace(', "unit": "celsius"', ""),  # a required argument missing
        ALARM_7.replace("7", "24"),  # outside the bounds
        ALARM_7.replace("}}", ', "extra": 1}}'),  # not a listed argument
    ]
    for call in bad:
        assert not oracle.accepts(one.grammar, write(call)), call
    assert not oracle.accepts(one.grammar, "I think " + write(PARIS))  # no text first
    assert not oracle.accepts(one.grammar, write(PARIS, ALARM_7))  # one call only
    if syntax != "llama3":  # Llama 3.x templates render one call per turn
        many = tool_prompt(template(syntax), ASK, [WEATHER, ALARM], "required", parallel=True)
        assert many.grammar is not None
        assert oracle.accepts(many.grammar, write(PARIS, ALARM_7))


@pytest.mark.parametrize("syntax", list(CALLS))
def test_auto_grammar_waits_for_its_trigger(oracle: GrammarOracle, syntax: str) -> None:
    write, _ = CALLS[syntax]
    auto = tool_prompt(template(syntax), ASK, [WEATHER, ALARM], "auto", parallel=False)
    assert auto.grammar is not None and auto.grammar_triggers
    grammar, triggers = auto.grammar, auto.grammar_triggers
    assert oracle.accepts(grammar, "It is sunny in Paris { today }.", triggers)  # no call
    assert oracle.accepts(grammar, write(PARIS), triggers)
    assert not oracle.accepts(grammar, write(PARIS.replace('"celsius"', '"kelvin"')), triggers)
    assert not oracle.accepts(grammar, write(PARIS) + " and more text", triggers)
    if syntax != "llama3":
        assert oracle.accepts(grammar, "Let me check. " + write(PARIS), triggers)
    else:  # Llama: a call after text starts with <|python_tag|>
        assert oracle.accepts(grammar, "Let me check.<|python_tag|>" + write(PARIS), triggers)


def test_named_choice_allows_only_that_tool(oracle: GrammarOracle) -> None:
    write, _ = CALLS["hermes"]
    named = tool_prompt(template("hermes"), ASK, [WEATHER, ALARM], FunctionChoice("set_alarm"))
    assert named.grammar is not None
    assert oracle.accepts(named.grammar, write(ALARM_7))
    assert not oracle.accepts(named.grammar, write(PARIS))


def test_generic_grammar_accepts_a_call_or_an_answer(oracle: GrammarOracle) -> None:
    fmt = builtin_format("completion", "models.toml")
    auto = tool_prompt(fmt, ASK, [WEATHER, ALARM])
    required = tool_prompt(fmt, ASK, [WEATHER, ALARM], "required", parallel=False)
    assert auto.grammar is not None and required.grammar is not None
    paris, alarm = PARIS.replace("ARGS", "arguments"), ALARM_7.replace("ARGS", "arguments")
    calls = f'{{"tool_calls": [{paris}]}}'
    two = f'{{"tool_calls": [{paris}, {alarm}]}}'
    answer = '{"response": "It is \\"sunny\\"."}'
    assert oracle.accepts(auto.grammar, calls) and oracle.accepts(auto.grammar, two)
    assert oracle.accepts(auto.grammar, answer)
    assert oracle.accepts(required.grammar, calls)
    assert not oracle.accepts(required.grammar, answer)
    assert not oracle.accepts(required.grammar, two)
    assert not oracle.accepts(auto.grammar, '{"tool_calls": []}')
    assert not oracle.accepts(auto.grammar, "Sunny.")


# ---- the real model, constrained -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("syntax", list(CALLS))
def test_the_base_model_emits_a_valid_call_under_each_native_grammar(
    gemma: llama_cpp.Llama, syntax: str
) -> None:
    result = tool_prompt(template(syntax), ASK, [WEATHER, ALARM], "required", parallel=False)
    assert result.grammar is not None
    text = generate(gemma, result.prompt.text, result.grammar, add_bos=not result.prompt.has_bos)
    events = parse(result, text)
    assert_valid_calls(events, count=1)
    assert all(isinstance(e, ToolCall) for e in events), (text, events)


@pytest.mark.slow
@pytest.mark.parametrize("syntax", list(CALLS))
def test_a_lazy_grammar_takes_over_at_the_marker(gemma: llama_cpp.Llama, syntax: str) -> None:
    """The model is made to write text and the call marker (as if it chose to call); the
    lazy grammar, triggered by that, then constrains the rest to a valid call."""
    result = tool_prompt(template(syntax), ASK, [WEATHER, ALARM], "auto", parallel=False)
    assert result.grammar is not None
    marker = {"hermes": "<tool_call>\n", "llama3": "<|python_tag|>", "mistral": "[TOOL_CALLS]"}
    forced = "Let me check. " + marker[syntax]
    text = generate(
        gemma,
        result.prompt.text,
        result.grammar,
        triggers=result.grammar_triggers,
        forced=forced,
        add_bos=not result.prompt.has_bos,
    )
    events = parse(result, text)
    assert events[0] == "Let me check."
    assert_valid_calls(events[1:], count=1)


@pytest.mark.slow
def test_generic_fallback_on_the_real_base_model_format(gemma: llama_cpp.Llama) -> None:
    fmt = builtin_format("completion", "models.toml")  # what gemma-3-270m really uses
    for choice in ("required", FunctionChoice("set_alarm")):
        result = tool_prompt(fmt, ASK, [WEATHER, ALARM], choice, parallel=False)
        assert result.grammar is not None and not result.grammar_triggers
        text = generate(gemma, result.prompt.text, result.grammar)
        events = parse(result, text)
        assert_valid_calls(events, count=1)
        if isinstance(choice, FunctionChoice):
            assert isinstance(events[0], ToolCall) and events[0].name == "set_alarm"
    auto = tool_prompt(fmt, ASK, [WEATHER, ALARM])
    assert auto.grammar is not None
    # A base model answering in prose may run on: the answer streams as text anyway.
    text = generate(gemma, auto.prompt.text, auto.grammar, max_tokens=60)
    events = parse(auto, text)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if value is None or "response" in value:
        assert text.replace(" ", "").startswith('{"response":"'), text
        assert all(isinstance(e, str) for e in events) and "".join(events).strip()
        if value is not None:
            assert "".join(events) == value["response"].strip()
    else:
        assert_valid_calls(events)


@pytest.mark.slow
def test_feeding_the_result_back_renders_and_generates_again(gemma: llama_cpp.Llama) -> None:
    result = tool_prompt(template("hermes"), ASK, [WEATHER], "required", parallel=False)
    assert result.grammar is not None
    (call,) = parse(result, generate(gemma, result.prompt.text, result.grammar))
    assert isinstance(call, ToolCall)
    history = [
        *ASK,
        Message("assistant", "", tool_calls=(ToolCall(call.name, call.arguments, "call_1"),)),
        Message("tool", '{"temperature": 21}', tool_call_id="call_1", name=call.name),
    ]
    again = tool_prompt(template("hermes"), history, [WEATHER], "none")
    assert json.dumps(dict(call.arguments), ensure_ascii=False) in again.prompt.text
    assert '<tool_response>\n{"temperature": 21}\n</tool_response>' in again.prompt.text
    reply = gemma.create_completion(again.prompt.text, max_tokens=8, temperature=0.0)
    assert isinstance(reply["choices"][0]["text"], str)
