"""Structured output and tool calls through a real ``localchat serve`` and the real Gemma 3
270M (a *base* model: its chat format has no tool syntax, so tools use the generic JSON
fallback), driven by the official ``openai`` SDK and ``ollama`` client on loopback.

The sampler enforces the grammar, so even this small base model's replies parse and
validate; every structured reply is checked with ``jsonschema``, every call's arguments
against its tool's schema.  The native ``<tool_call>`` syntax end to end is in
``test_serve_native_tools.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from tests.fixtures.servers import (
    API_KEY,
    RunningServer,
    keyed_server,
    openai_client,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")
jsonschema = pytest.importorskip("jsonschema")

MODEL = "gemma-3-270m"
GREEDY = {"temperature": 0, "seed": 3}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class City(BaseModel):
    name: str = Field(max_length=24)
    country: str = Field(max_length=24)
    population: int = Field(ge=0, le=100_000_000)


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str = Field(max_length=24)
    unit: str = Field(pattern="^(celsius|fahrenheit)$")


WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": WEATHER_PARAMETERS,
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time now in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 32}},
            "required": ["zone"],
        },
    },
}
SCHEMAS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_TOOL["function"]["parameters"]}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    yield from keyed_server(tmp_path_factory, shared_pip_models)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai_client(server)


@pytest.fixture
def ollama_client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.base_url, headers=AUTH)


def assert_valid_calls(calls: list, count: int | None = None) -> None:
    """OpenAI-shaped calls: ids, type function, arguments a JSON string valid for the tool."""
    assert calls, "no tool calls"
    if count is not None:
        assert len(calls) == count
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert isinstance(call.function.arguments, str)
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert len({call.id for call in calls}) == len(calls)


# -- OpenAI: structured output ---------------------------------------------------------


def test_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris."}],
        response_format=City,
        max_tokens=120,
        **GREEDY,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, City)
    jsonschema.validate(json.loads(choice.message.content), City.model_json_schema())


def test_json_schema_streams_and_the_sdk_assembles_it(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Rome."}],
        response_format=City,
        max_tokens=120,
        **GREEDY,
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 3  # streamed in pieces, not one lump
    parsed = final.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert "".join(deltas) == final.choices[0].message.content


def test_json_object_mode(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give the name and age of a cat as JSON."}],
        response_format={"type": "json_object"},
        max_tokens=150,
        **GREEDY,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(json.loads(choice.message.content), dict)


def test_a_schema_the_grammar_cannot_enforce_is_a_400_naming_it(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, response_format=response_format, max_tokens=5
        )
    message = caught.value.body["message"]
    assert message.startswith("response_format.json_schema.schema: 'multipleOf' at /properties/n")


def test_max_tokens_cutting_the_json_says_length(client: openai.OpenAI) -> None:
    """A reply cut by ``max_tokens`` is not valid JSON: the finish reason says so, and the
    SDK's parse refuses it rather than pretending."""
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris."}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "City", "schema": City.model_json_schema()}},
        max_tokens=4,
        **GREEDY,
    )  # fmt: skip
    assert reply.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(reply.choices[0].message.content)


# -- OpenAI: tool calls ----------------------------------------------------------------


def test_required_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=80,
        **GREEDY,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert_valid_calls(choice.message.tool_calls, count=1)


def test_named_tool_streamed_and_assembled_by_the_sdk(client: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(GetWeather, name="get_weather")
    named = {"type": "function", "function": {"name": "get_weather"}}
    with client.chat.completions.stream(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[tool, TIME_TOOL],
        tool_choice=named,
        parallel_tool_calls=False,
        max_tokens=100,
        **GREEDY,
    ) as stream:
        done = [event for event in stream if event.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [call.function.name for call in calls] == ["get_weather"] * len(calls)
    assert_valid_calls(calls)
    assert isinstance(calls[0].function.parsed_arguments, GetWeather)  # the SDK parsed it
    assert [event.name for event in done] == [call.function.name for call in calls]


def test_raw_stream_chunks_have_the_openai_shape(server: RunningServer) -> None:
    body = {"model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER_TOOL],
            "tool_choice": "required", "parallel_tool_calls": False, "stream": True,
            "max_tokens": 80, **GREEDY}  # fmt: skip
    with httpx.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=120
    ) as reply:
        lines = [line[5:].strip() for line in reply.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    pieces = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    head, arguments = pieces[0], pieces[1]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert set(arguments) == {"index", "function"} and set(arguments["function"]) == {"arguments"}
    jsonschema.validate(json.loads(arguments["function"]["arguments"]), WEATHER_PARAMETERS)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_tool_result_fed_back_renders_and_answers(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice="required",
        parallel_tool_calls=False, max_tokens=80, **GREEDY,
    )  # fmt: skip
    call = first.choices[0].message.tool_calls[0]
    history = [
        *ASK_WEATHER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "31 degrees and sunny"},
    ]
    second = client.chat.completions.create(
        model=MODEL, messages=history, tools=[WEATHER_TOOL], max_tokens=40, **GREEDY
    )
    without_result = client.chat.completions.create(
        model=MODEL, messages=history[:-1], tools=[WEATHER_TOOL], max_tokens=1, **GREEDY
    )
    choice = second.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls
    # the call and its result are in the prompt: more tokens than without the result
    assert second.usage.prompt_tokens > without_result.usage.prompt_tokens + 5


def test_the_deprecated_functions_api_is_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, functions=[WEATHER_TOOL["function"]]
        )
    assert caught.value.body["message"].startswith("functions: ")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tool_choice="required", max_tokens=5
        )
    assert "no tools were given" in caught.value.body["message"]


# -- Ollama ----------------------------------------------------------------------------


def test_ollama_format_schema(ollama_client: ollama.Client) -> None:
    reply = ollama_client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris."}],
        format=City.model_json_schema(),
        options={"temperature": 0, "seed": 3, "num_predict": 120},
    )
    assert reply.done_reason == "stop"
    City.model_validate_json(reply.message.content)
    jsonschema.validate(json.loads(reply.message.content), City.model_json_schema())


def test_ollama_format_json_streamed(ollama_client: ollama.Client) -> None:
    parts = list(
        ollama_client.chat(
            model=MODEL,
            messages=[
                {"role": "user", "content": "Describe a dog as JSON with the keys name and breed."}
            ],
            format="json",
            stream=True,
            options={"temperature": 0, "seed": 3, "num_predict": 150},
        )
    )
    text = "".join(part.message.content for part in parts)
    assert parts[-1].done and parts[-1].done_reason == "stop", text
    assert len([p for p in parts if p.message.content]) > 3
    assert isinstance(json.loads(text), dict)


def test_ollama_generate_with_a_schema(ollama_client: ollama.Client) -> None:
    reply = ollama_client.generate(
        model=MODEL, prompt="Describe Tokyo.", format=City.model_json_schema(),
        options={"temperature": 0, "seed": 3, "num_predict": 120},
    )  # fmt: skip
    City.model_validate_json(reply.response)


def test_ollama_raw_generate_with_format_json(ollama_client: ollama.Client) -> None:
    """``raw`` skips the chat format, not the format: the continuation is still JSON."""
    reply = ollama_client.generate(
        model=MODEL, prompt='Tom is a cat. As JSON: {"name": "Tom", "species": "cat"}\nRex is a dog. As JSON:', raw=True, format="json",
        options={"temperature": 0, "seed": 3, "num_predict": 60},
    )  # fmt: skip
    assert reply.done_reason == "stop", reply.response
    assert isinstance(json.loads(reply.response), dict)


def get_weather(city: str, unit: str) -> str:
    """Get the current weather in a city.

    Args:
      city: The city's name
      unit: celsius or fahrenheit
    """
    return f"31 degrees {unit} in {city}"


OLLAMA_ASK = [{"role": "user", "content": "Call get_weather for Paris in celsius."}]
# Ollama has no tool_choice, and this base model never chooses to call on its own (its
# choice between the call and the answer object is near-certain for the answer): the
# options' tool_choice (localchat's extra) makes it call; parallel_tool_calls (the other
# extra) false makes it one call, where this model would otherwise repeat it.
CALL = {"temperature": 0, "seed": 3, "num_predict": 80, "tool_choice": "required",
        "parallel_tool_calls": False}  # fmt: skip


def test_ollama_tools_from_a_python_function(ollama_client: ollama.Client) -> None:
    """The client turns the function into a tool; the call comes back with arguments as an
    object, which validates against the tool's schema; the result goes back by name."""
    options = {**CALL}
    reply = ollama_client.chat(model=MODEL, messages=OLLAMA_ASK, tools=[get_weather],
                               options=options)  # fmt: skip
    calls = reply.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    schema = ollama._utils.convert_function_to_tool(get_weather).function.parameters
    jsonschema.validate(dict(calls[0].function.arguments), schema.model_dump(exclude_none=True))
    result = get_weather(**calls[0].function.arguments)
    history = [*OLLAMA_ASK, reply.message, {"role": "tool", "content": result,
                                            "tool_name": "get_weather"}]  # fmt: skip
    answer = ollama_client.chat(model=MODEL, messages=history, tools=[get_weather],
                                options={"temperature": 0, "seed": 3, "num_predict": 40})  # fmt: skip
    assert answer.done and (answer.message.content or answer.message.tool_calls)
    assert answer.prompt_eval_count > reply.prompt_eval_count


def test_ollama_tools_streamed(ollama_client: ollama.Client) -> None:
    options = {**CALL, "tool_choice": "get_weather"}
    parts = list(ollama_client.chat(model=MODEL, messages=OLLAMA_ASK, tools=[get_weather],
                                    options=options, stream=True))  # fmt: skip
    calls = [call for part in parts for call in part.message.tool_calls or ()]
    assert calls and {call.function.name for call in calls} == {"get_weather"}
    for call in calls:
        assert isinstance(call.function.arguments, dict)
        assert set(call.function.arguments) == {"city", "unit"}
    assert parts[-1].done


def test_ollama_tools_the_model_may_decline(ollama_client: ollama.Client) -> None:
    """Without a tool_choice the model may answer instead: here it does, in plain text
    (the generic fallback's answer object is unwrapped as it streams)."""
    parts = list(ollama_client.chat(model=MODEL, messages=OLLAMA_ASK, tools=[get_weather],
                                    stream=True, options={"temperature": 0, "seed": 3,
                                                          "num_predict": 30}))  # fmt: skip
    text = "".join(part.message.content for part in parts)
    assert text.strip() and not text.lstrip().startswith("{")
    assert not any(part.message.tool_calls for part in parts)


def test_show_lists_no_tools_capability_for_a_base_model(server: RunningServer) -> None:
    reply = httpx.post(f"{server.base_url}/api/show", json={"model": MODEL}, headers=AUTH)
    assert reply.status_code == 200
    assert reply.json()["capabilities"] == ["completion"]
