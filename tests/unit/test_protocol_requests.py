"""``localchat.protocol``'s request side: every documented field is modelled (checked
against the official ``openai`` SDK's and ``ollama`` client's own request types, so a
field they add fails here until it is classified), each rule is stated once, refused
features are a 400 naming the field, and the chat-message parser turns wire messages
into ``types.Message`` (tool turns included); tools, tool_choice, response_format and
Ollama's format become ``types.ToolUse`` / ``types.ReplyFormat``."""

from __future__ import annotations

import json
import time
import typing

import pytest

from localchat import errors
from localchat.engine.remote_engine import request_for
from localchat.protocol import ollama as ollama_wire
from localchat.protocol import openai as openai_wire
from localchat.protocol import parse_messages, parse_request, validate
from localchat.protocol.base import MAX_STOP_CHARS, MAX_STOP_STRINGS
from localchat.protocol.messages import ChatMessage
from localchat.settings import Settings
from localchat.types import (
    Message,
    PromptSpec,
    ReplyFormat,
    SamplingParams,
    ToolCall,
    ToolSpec,
    ToolUse,
)

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

USER = {"role": "user", "content": "hi"}


def chat(**fields: object) -> bytes:
    return json.dumps({"model": "m", "messages": [USER], **fields}).encode()


def refused(raw: bytes, schema: type = openai_wire.ChatCompletionRequest) -> str:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_request(raw, schema)
    return caught.value.one_line()


# -- every documented field is modelled ------------------------------------------------


def _fields(typed_dict: type) -> set[str]:
    return set(typing.get_type_hints(typed_dict))


def test_every_openai_request_field_is_modelled() -> None:
    from openai.types import completion_create_params, embedding_create_params
    from openai.types.chat import completion_create_params as chat_params

    pairs = [
        (chat_params.CompletionCreateParamsBase, openai_wire.ChatCompletionRequest),
        (completion_create_params.CompletionCreateParamsBase, openai_wire.CompletionRequest),
        (embedding_create_params.EmbeddingCreateParams, openai_wire.EmbeddingRequest),
    ]
    for documented, ours in pairs:
        missing = _fields(documented) - set(ours.model_fields)
        assert not missing, (ours.__name__, missing)
    assert {"stream", "stream_options"} <= set(openai_wire.ChatCompletionRequest.model_fields)


def test_every_openai_message_field_is_modelled() -> None:
    from openai.types import chat as types

    for documented in (
        types.ChatCompletionSystemMessageParam,
        types.ChatCompletionDeveloperMessageParam,
        types.ChatCompletionUserMessageParam,
        types.ChatCompletionAssistantMessageParam,
        types.ChatCompletionToolMessageParam,
        types.ChatCompletionFunctionMessageParam,
    ):
        assert not _fields(documented) - set(ChatMessage.model_fields), documented.__name__


def test_every_ollama_request_field_and_option_is_modelled() -> None:
    from ollama import _types as types

    pairs = [
        (types.ChatRequest, ollama_wire.ChatRequest),
        (types.GenerateRequest, ollama_wire.GenerateRequest),
        (types.EmbedRequest, ollama_wire.EmbedRequest),
        (types.EmbeddingsRequest, ollama_wire.EmbeddingsRequest),
        (types.Options, ollama_wire.Options),
        (types.Message, ollama_wire.OllamaMessage),
    ]
    for documented, ours in pairs:
        assert not set(documented.model_fields) - set(ours.model_fields), ours.__name__


# -- honoured, harmless, refused -------------------------------------------------------


def test_honoured_fields_become_engine_parameters() -> None:
    body = chat(temperature=0.2, top_p=0.5, seed=7, max_completion_tokens=9, max_tokens=99,
                presence_penalty=0.5, frequency_penalty=-0.5, top_k=5, min_p=0.1,
                repeat_penalty=1.1, stop=["a", ""], num_ctx=4096)  # fmt: skip
    request = parse_request(body, openai_wire.ChatCompletionRequest)
    sampling = request.to_sampling(SamplingParams())
    assert (sampling.temperature, sampling.top_p, sampling.seed) == (0.2, 0.5, 7)
    assert sampling.max_tokens == 9  # max_completion_tokens wins over max_tokens
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, -0.5)
    assert (sampling.top_k, sampling.min_p, sampling.repeat_penalty) == (5, 0.1, 1.1)
    assert request.stop_strings() == ("a",) and request.num_ctx == 4096
    untouched = parse_request(chat(), openai_wire.ChatCompletionRequest)
    assert untouched.to_sampling(SamplingParams(temperature=0.9)).temperature == 0.9


def test_harmless_fields_are_accepted() -> None:
    body = chat(user="u", metadata={"k": "v"}, store=False, service_tier="auto",
                parallel_tool_calls=True, n=1, logprobs=False, tool_choice="none",
                response_format={"type": "text"}, modalities=["text"], prompt_cache_key="c",
                stream_options={"include_usage": True, "include_obfuscation": False})  # fmt: skip
    assert parse_request(body, openai_wire.ChatCompletionRequest).include_usage()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools"),
        ({"tool_choice": {"type": "custom", "custom": {"name": "f"}}}, "tool_choice.type"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": {"name": "f"}}, "function_call"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "grammar"}}, "response_format.type"),
        ({"n": 9}, "n"),  # more choices than the 8 a request may have
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"verbosity": "low"}, "verbosity"),
        ({"moderation": {"model": "m"}}, "moderation"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)  # fmt: skip
def test_refused_fields_are_named(fields: dict[str, object], named: str) -> None:
    assert refused(chat(**fields)).startswith(f"{named}: ")


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
         "messages[0].content[0]"),
        ({"role": "user", "content": [{"type": "input_audio",
          "input_audio": {"data": "", "format": "wav"}}]}, "messages[0].content[0]"),
        ({"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]},
         "messages[0].content[0]"),
        ({"role": "function", "content": "42", "name": "f"}, "messages[0].role"),
        ({"role": "assistant", "content": None, "function_call": {"name": "f",
          "arguments": "{}"}}, "messages[0].function_call"),
        ({"role": "assistant", "content": "x", "audio": {"id": "a"}}, "messages[0].audio"),
    ],
)  # fmt: skip
def test_refused_message_parts_are_named(message: dict[str, object], named: str) -> None:
    assert refused(json.dumps({"model": "m", "messages": [message]}).encode()).startswith(named)


def test_completion_refusals() -> None:
    def completion(**fields: object) -> bytes:
        return json.dumps({"model": "m", "prompt": "p", **fields}).encode()

    schema = openai_wire.CompletionRequest
    assert parse_request(completion(), schema).prompt_text() == "p"
    assert parse_request(completion(prompt=["only"]), schema).prompt_text() == "only"
    for fields, named in [({"prompt": [1, 2]}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
                          ({"echo": True}, "echo"), ({"best_of": 2}, "best_of"),
                          ({"logprobs": 1}, "logprobs"), ({"suffix": "x"}, "suffix")]:  # fmt: skip
        assert refused(completion(**fields), schema).startswith(f"{named}: ")


def test_ollama_options_honoured_harmless_and_refused() -> None:
    body = {"model": "m", "messages": [USER], "keep_alive": "5m", "think": True,
            "options": {"num_ctx": 2048, "num_predict": -1, "temperature": 0, "top_k": 3,
                        "seed": 1, "stop": ["x"], "num_gpu": 99, "num_thread": 2,
                        "use_mmap": True, "mirostat": 0, "typical_p": 1.0, "tfs_z": 1.0,
                        "repeat_last_n": 64}}  # fmt: skip
    request = parse_request(json.dumps(body).encode(), ollama_wire.ChatRequest)
    sampling = request.options.to_sampling(SamplingParams(max_tokens=50))
    assert (sampling.max_tokens, sampling.temperature, sampling.top_k, sampling.seed) == (
        0, 0, 3, 1)  # fmt: skip
    assert request.keep_alive_s() == 300 and request.stop_strings() == ("x",)
    assert request.chat_messages() == [Message("user", "hi")]
    for options, named in [({"mirostat": 2}, "options.mirostat"),
                           ({"typical_p": 0.5}, "options.typical_p"),
                           ({"tfs_z": 0.9}, "options.tfs_z"),
                           ({"repeat_last_n": 128}, "options.repeat_last_n"),
                           ({"top_p": 0}, "options.top_p"),
                           ({"frobnicate": 1}, "options.frobnicate")]:  # fmt: skip
        raw = json.dumps({"model": "m", "options": options}).encode()
        assert refused(raw, ollama_wire.GenerateRequest).startswith(f"{named}: ")


@pytest.mark.parametrize(
    ("schema", "fields", "named"),
    [
        (ollama_wire.ChatRequest, {"format": "yaml"}, "format"),
        (ollama_wire.ChatRequest, {"think": "high"}, "think"),
        (ollama_wire.ChatRequest, {"messages": [{**USER, "images": ["aGk="]}]},
         "messages[0].images"),
        (ollama_wire.GenerateRequest, {"images": ["aGk="]}, "images"),
        (ollama_wire.GenerateRequest, {"suffix": "x"}, "suffix"),
        (ollama_wire.GenerateRequest, {"template": "{{ .Prompt }}"}, "template"),
        (ollama_wire.GenerateRequest, {"context": [1, 2]}, "context"),
        (ollama_wire.GenerateRequest, {"keep_alive": "5 minutes"}, "keep_alive"),
    ],
)  # fmt: skip
def test_ollama_refusals_are_named(schema: type, fields: dict[str, object], named: str) -> None:
    raw = json.dumps({"model": "m", **fields}).encode()
    assert refused(raw, schema).startswith(f"{named}: ")


def test_tools_and_tool_turns_parse_into_localchat_types() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather "},
                                     {"type": "text", "text": "in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]  # fmt: skip
    request = validate(openai_wire.ChatCompletionRequest, {"model": "m", "messages": messages,
                                                           "tools": [tool]})  # fmt: skip
    assert request.tool_specs() == [
        ToolSpec("get_weather", "d", {"type": "object", "properties": {"city": {"type": "string"}}})
    ]
    parsed = [m.to_message(f"messages[{i}]") for i, m in enumerate(request.messages)]
    assert parsed == [
        Message("system", "be brief"),
        Message("user", "weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, "c1"),)),
        Message("tool", "sunny", tool_call_id="c1"),
    ]
    with pytest.raises(errors.InvalidRequest, match=r"tool_calls\[0\].function.arguments"):
        bad = {**messages[2], "tool_calls": [{"id": "c", "type": "function",
               "function": {"name": "f", "arguments": "[1]"}}]}  # fmt: skip
        ChatMessage.model_validate(bad).to_message("messages[2]")
    ollama_request = validate(ollama_wire.ChatRequest, {"model": "m", "tools": [tool], "messages": [
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}},
                                             {"id": "c2", "function": {"name": "f", "index": 1,
                                                                       "arguments": {}}}]},
        {"role": "tool", "content": "2", "tool_name": "f"}]})  # fmt: skip
    assert ollama_request.tool_specs()[0].name == "get_weather"
    assert [m.to_message() for m in ollama_request.messages] == [
        Message("assistant", "", (ToolCall("f", {"a": 1}), ToolCall("f", {}, "c2"))),
        Message("tool", "2", name="f"),
    ]


def test_tool_choice_and_formats_become_tool_use_and_reply_format() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    spec = (ToolSpec("f", "", {"type": "object"}),)

    def openai_body(**fields: object) -> openai_wire.ChatCompletionRequest:
        return parse_request(chat(**fields), openai_wire.ChatCompletionRequest)

    assert openai_body().tool_use() is None and openai_body().reply_format() is None
    assert openai_body(tool_choice="none").tool_use() is None
    assert openai_body(tools=[tool]).tool_use() == ToolUse(spec, "auto")
    assert openai_body(tools=[tool], tool_choice="required", parallel_tool_calls=False
                       ).tool_use() == ToolUse(spec, "required", None, False)  # fmt: skip
    named = {"type": "function", "function": {"name": "f"}}
    assert openai_body(tools=[tool], tool_choice=named).tool_use() == ToolUse(spec, "required", "f")
    # tool_choice "required" without tools is kept, so the server can refuse it by name
    assert openai_body(tool_choice="required").tool_use() == ToolUse((), "required")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert openai_body(response_format={"type": "text"}).reply_format() is None
    assert openai_body(response_format={"type": "json_object"}).reply_format() == ReplyFormat()
    as_schema = {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": schema, "strict": True},
    }
    assert openai_body(response_format=as_schema).reply_format() == ReplyFormat(schema, "n")
    without = {"type": "json_schema", "json_schema": {"name": "n"}}
    assert openai_body(response_format=without).reply_format() == ReplyFormat(None, "n")

    def ollama_body(**fields: object) -> ollama_wire.ChatRequest:
        raw = json.dumps({"model": "m", "messages": [USER], **fields}).encode()
        return parse_request(raw, ollama_wire.ChatRequest)

    assert ollama_body().reply_format() is None and ollama_body(format="").reply_format() is None
    assert ollama_body(format="json").reply_format() == ReplyFormat()
    assert ollama_body(format=schema).reply_format() == ReplyFormat(schema, "format")
    assert ollama_body(tools=[tool]).tool_use() == ToolUse(spec)
    assert ollama_body().tool_use() is None
    # localchat's extras in Ollama's options, as OpenAI has them
    forced = ollama_body(tools=[tool], options={"tool_choice": "required",
                                                "parallel_tool_calls": False})  # fmt: skip
    assert forced.tool_use() == ToolUse(spec, "required", None, False)
    assert ollama_body(tools=[tool], options={"tool_choice": "f"}).tool_use() == ToolUse(
        spec, "required", "f")  # fmt: skip
    raw = json.dumps({"model": "m", "prompt": "p", "options": {"tool_choice": "required"}})
    assert refused(raw.encode(), ollama_wire.GenerateRequest).startswith("options.tool_choice: ")


# -- one rule each -----------------------------------------------------------------------


def test_top_p_zero_is_refused_everywhere() -> None:
    assert refused(chat(top_p=0)).startswith("top_p: ")
    raw = json.dumps({"model": "m", "options": {"top_p": 0}}).encode()
    assert refused(raw, ollama_wire.GenerateRequest).startswith("options.top_p: ")
    with pytest.raises(errors.ConfigError, match="top_p"):
        Settings(top_p=0.0).validate()
    assert parse_request(chat(top_p=1), openai_wire.ChatCompletionRequest).top_p == 1
    Settings(top_p=1.0, temperature=5.0).validate()
    assert refused(chat(temperature=5.01)).startswith("temperature: ")
    with pytest.raises(errors.ConfigError, match="temperature"):
        Settings(temperature=5.01).validate()


@pytest.mark.parametrize("seed", [-1, 2**32 - 1, 2**40])
def test_seed_range(seed: int) -> None:
    assert refused(chat(seed=seed)).startswith("seed: ")


def test_stop_strings_one_rule_and_the_client_sends_them_all() -> None:
    most = [f"s{n}" for n in range(MAX_STOP_STRINGS)]
    accepted = parse_request(chat(stop=most), openai_wire.ChatCompletionRequest)
    assert accepted.stop_strings() == tuple(most)
    assert refused(chat(stop=[*most, "one more"])).startswith("stop: ")
    assert refused(chat(stop=["x" * (MAX_STOP_CHARS + 1)])).startswith("stop: ")
    prompt = PromptSpec("", stop_strings=tuple(most), messages=(Message("user", "hi"),))
    sent = request_for("m", None, prompt, SamplingParams())
    assert sent.stop == most  # all of them, never truncated
    with pytest.raises(errors.InvalidRequest, match="stop"):
        request_for("m", None, PromptSpec("", stop_strings=(*most, "x")), SamplingParams())


def test_the_client_builds_the_requests_the_server_parses() -> None:
    sampling = SamplingParams(temperature=0.3, top_p=0.9, max_tokens=5, seed=4)
    messages = (Message("system", "s"), Message("user", "u"))
    sent = request_for("m", 2048, PromptSpec("", messages=messages), sampling)
    wire = json.dumps(sent.model_dump(mode="json", exclude_none=True)).encode()
    back = parse_request(wire, openai_wire.ChatCompletionRequest)
    assert back.chat_messages() == list(messages) and back.num_ctx == 2048
    assert back.to_sampling(SamplingParams()).max_tokens == 5 and back.stream
    raw = request_for("m", None, PromptSpec("1, 2,"), sampling)
    assert isinstance(raw, openai_wire.CompletionRequest) and raw.prompt_text() == "1, 2,"


# -- hostile bodies ----------------------------------------------------------------------


def test_lone_surrogates_and_deep_nesting_are_one_line_400s_in_bounded_time() -> None:
    surrogate = b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}'
    encoded = b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'
    deep = b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    started = time.perf_counter()
    for raw in (surrogate, encoded, deep):
        assert "not valid JSON" in refused(raw)
    assert "not valid JSON" in refused(deep, ollama_wire.ChatRequest)
    assert time.perf_counter() - started < 5  # a bound, not a speed target
    ok = b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert parse_request(ok, openai_wire.ChatCompletionRequest).chat_messages()[0].content == "😀"


# -- the one message parser (show --render) ---------------------------------------------


def test_parse_messages_accepts_what_the_server_accepts() -> None:
    parsed = parse_messages(
        [{"role": "developer", "content": "d"},
         {"role": "user", "content": [{"type": "text", "text": "a"}], "name": "ann"},
         {"role": "assistant", "content": "b", "refusal": None, "reasoning_content": "r"}]
    )  # fmt: skip
    assert parsed == [Message("system", "d"), Message("user", "a"), Message("assistant", "b")]
    for bad, says in [([], "non-empty"), ([{"role": "user", "content": 3}], "string or a list"),
                      ([{"role": "bot", "content": ""}], "role must be"),
                      ([{"role": "user", "content": [{"type": "image_url",
                         "image_url": {"url": "x"}}]}], "projector")]:  # fmt: skip
        with pytest.raises(errors.InvalidRequest, match=says):
            parse_messages(bad)


def test_embedding_requests_are_modelled() -> None:
    def embed(value: object) -> bytes:
        return json.dumps({"model": "m", "input": value}).encode()

    schema = openai_wire.EmbeddingRequest
    assert parse_request(embed("a"), schema).inputs() == ["a"]
    assert parse_request(embed(["a", "b"]), schema).inputs() == ["a", "b"]
    assert parse_request(embed([1, 2]), schema).inputs() == [[1, 2]]  # token ids: one input
    assert parse_request(embed([[1], [2, 3]]), schema).inputs() == [[1], [2, 3]]
    assert refused(embed([]), schema).startswith("input: ")
    assert refused(embed(["a", ""]), schema).startswith("input: ")
    assert refused(embed(["a"] * 2049), schema).startswith("input: ")
    ollama_embed = parse_request(embed(["a"]), ollama_wire.EmbedRequest)
    assert ollama_embed.input == ["a"] and ollama_embed.truncate
