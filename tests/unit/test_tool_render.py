"""Conversations with tools rendered through the models' own templates (llama.cpp's copies
of the Qwen 2.5, Llama 3.1 and Mistral Nemo templates): byte for byte what plain Jinja
renders from the messages and tools as Hugging Face passes them, with the tools, the
assistant's calls and the tool results each in the template's own syntax."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest

from localchat.errors import TemplateRejected
from localchat.formats.base import ChatFormat
from localchat.formats.resolve import gguf_format
from localchat.formats.tools import FunctionChoice, supports_native_tools, tool_prompt, tool_syntax
from localchat.types import Message, ToolCall, ToolSpec

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates"

QWEN = "Qwen-Qwen2.5-7B-Instruct.jinja"
LLAMA = "meta-llama-3.1-instruct.jinja"
MISTRAL = "mistralai-Mistral-Nemo-Instruct-2407.jinja"
METADATA = {
    QWEN: {"tokenizer.eos_token": "<|im_end|>", "general.architecture": "qwen2"},
    LLAMA: {
        "tokenizer.bos_token": "<|begin_of_text|>",
        "tokenizer.eos_token": "<|eot_id|>",
        "general.architecture": "llama",
    },
    MISTRAL: {"tokenizer.bos_token": "<s>", "tokenizer.eos_token": "</s>"},
}

WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
)
TIME = ToolSpec(
    "get_time",
    "The time in a timezone",
    {"type": "object", "properties": {"tz": {"type": "string"}}},
)
ASK = [Message("system", "Be brief."), Message("user", "Weather in Paris?")]
CALLED = [
    *ASK,
    Message("assistant", "", tool_calls=(ToolCall("get_weather", {"city": "Paris"}, "abc123def"),)),
    Message("tool", '{"temp": 21}', tool_call_id="abc123def", name="get_weather"),
]


def template_format(name: str) -> ChatFormat:
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    return gguf_format(source, {**METADATA[name], "tokenizer.chat_template": source})


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)  # as transformers does


def _raise(message: str) -> None:
    raise ValueError(message)


def reference(name: str, messages: list[dict], tools: list[dict] | None) -> str:
    """The template rendered with plain Jinja as transformers' apply_chat_template does."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    extra: dict[str, Any] = {"tools": tools} if tools is not None else {}
    meta = METADATA[name]
    return env.from_string((TEMPLATES / name).read_text(encoding="utf-8")).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=meta.get("tokenizer.bos_token", ""),
        eos_token=meta.get("tokenizer.eos_token", ""),
        raise_exception=_raise,
        **extra,
    )


HF_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": dict(WEATHER.parameters),
    },
}
HF_ASK = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
]
HF_CALLED = [
    *HF_ASK,
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "abc123def",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "abc123def", "name": "get_weather"},
]


@pytest.mark.parametrize("name", [QWEN, LLAMA, MISTRAL])
@pytest.mark.parametrize("history", [False, True])
def test_tools_and_calls_render_exactly_as_hugging_face_passes_them(
    name: str, history: bool
) -> None:
    messages, hf_messages = (CALLED, HF_CALLED) if history else (ASK, HF_ASK)
    prompt = tool_prompt(template_format(name), messages, [WEATHER]).prompt
    assert prompt.text == reference(name, hf_messages, [HF_TOOL])


def test_qwen_shows_tools_calls_and_results_its_own_way() -> None:
    fmt = template_format(QWEN)
    assert tool_syntax(fmt) == "hermes" and supports_native_tools(fmt)
    text = tool_prompt(fmt, CALLED, [WEATHER]).prompt.text
    assert f"<tools>\n{json.dumps(HF_TOOL, ensure_ascii=False)}\n</tools>" in text
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    )
    assert '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>' in text
    assert text.endswith("<|im_start|>assistant\n")


def test_llama_shows_tools_calls_and_results_its_own_way() -> None:
    fmt = template_format(LLAMA)
    assert tool_syntax(fmt) == "llama3"
    text = tool_prompt(fmt, CALLED, [WEATHER]).prompt.text
    assert "Environment: ipython\n" in text
    assert json.dumps(HF_TOOL, indent=4, ensure_ascii=False) in text
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in text
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temp\\": 21}"<|eot_id|>' in text


def test_mistral_gets_nine_character_ids_paired_between_calls_and_results() -> None:
    fmt = template_format(MISTRAL)
    assert tool_syntax(fmt) == "mistral"
    openai_ids = [
        *ASK,
        Message(
            "assistant",
            "",
            tool_calls=(ToolCall("get_weather", {"city": "Paris"}, "call_Xy7_long-id"),),
        ),
        Message("tool", '{"temp": 21}', tool_call_id="call_Xy7_long-id"),
    ]
    text = tool_prompt(fmt, openai_ids, [WEATHER]).prompt.text
    call_id = text.split('"id": "')[1][:9]
    assert call_id.isalnum() and len(call_id) == 9
    assert f'"city": "Paris"}}, "id": "{call_id}"}}]</s>' in text
    assert (
        f'[TOOL_RESULTS]{{"content": {{"temp": 21}}, "call_id": "{call_id}"}}[/TOOL_RESULTS]'
        in text
    )
    assert '[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather"' in text


def test_mistral_pairs_ollama_results_that_carry_no_ids() -> None:
    fmt = template_format(MISTRAL)
    calls = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "CET"}))
    messages = [
        *ASK,
        Message("assistant", "", tool_calls=calls),
        Message("tool", "12:00", name="get_time"),
        Message("tool", "sunny", name="get_weather"),
    ]
    text = tool_prompt(fmt, messages, [WEATHER, TIME]).prompt.text
    listed = json.loads(text.split("[TOOL_CALLS]")[1].split("</s>")[0])
    ids = {call["name"]: call["id"] for call in listed}
    assert f'"content": 12:00, "call_id": "{ids["get_time"]}"' in text
    assert f'"content": sunny, "call_id": "{ids["get_weather"]}"' in text


def test_the_llama_template_refusing_parallel_history_is_a_clear_error() -> None:
    two = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "CET"}))
    messages = [*ASK, Message("assistant", "", tool_calls=two), Message("tool", "x")]
    with pytest.raises(TemplateRejected, match="single tool-calls"):
        tool_prompt(template_format(LLAMA), messages, [WEATHER, TIME])


def test_tool_choice_none_leaves_the_tools_out_but_renders_the_history() -> None:
    for name in (QWEN, LLAMA, MISTRAL):
        result = tool_prompt(template_format(name), CALLED, [WEATHER], "none")
        assert "Current weather for a city" not in result.prompt.text
        assert "Paris" in result.prompt.text and "21" in result.prompt.text
        assert result.grammar is None and result.syntax == "none"


def test_a_named_choice_still_shows_every_tool() -> None:
    text = tool_prompt(
        template_format(QWEN), ASK, [WEATHER, TIME], FunctionChoice("get_time")
    ).prompt.text
    assert '"name": "get_weather"' in text and '"name": "get_time"' in text
