"""Structured output and tool calls through a remote engine: the Python API on a model a
server runs sends ``response_format`` / ``tools`` on (the server enforces them) and reads
the calls back.  Servers: a real ``localchat serve`` and llama-cpp-python's own server,
both on 127.0.0.1 with the real gemma-3-270m."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from localchat.types import Message, ReplyFormat, SamplingParams, ToolSpec
from tests.fixtures.servers import RunningServer, server_home, start_localchat_server

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
jsonschema = pytest.importorskip("jsonschema")

GREEDY = SamplingParams(temperature=0.0, seed=3, max_tokens=120)
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24}},
     "required": ["city"], "additionalProperties": False},
)  # fmt: skip


class City(BaseModel):
    name: str = Field(max_length=24)
    country: str = Field(max_length=24)


@pytest.fixture(scope="module")
def localchat_server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(home, "--threads", "2", "--no-pull")


def test_the_python_api_on_a_localchat_server(
    localchat_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localchat.api import open_model

    monkeypatch.setenv("LOCALCHAT_HOST", f"127.0.0.1:{localchat_server.port}")
    with open_model("gemma-3-270m") as model:
        assert model.local is None  # the server runs it: the request is passed on
        city = model.structured([Message("user", "Describe Paris.")], City, GREEDY)
        assert isinstance(city, City)
        reply = model.call_tools(
            "What is the weather in Oslo?", [WEATHER], choice="required", parallel=False,
            sampling=GREEDY,
        )  # fmt: skip
        assert [call.name for call in reply.calls] == ["get_weather"]
        assert reply.calls[0].id.startswith("call_") and reply.text == ""
        jsonschema.validate(dict(reply.calls[0].arguments), dict(WEATHER.parameters))


def test_json_mode_on_llama_cpp_python_s_server(llama_server: RunningServer) -> None:
    """That server takes ``json_object`` (not OpenAI's ``json_schema``); its grammar makes
    the reply JSON from the first character, where the model alone writes prose."""
    from localchat.api import open_model

    ask = [Message("user", "Describe a cat.")]
    short = SamplingParams(temperature=0.0, seed=3, max_tokens=12)
    with open_model(engine=f"{llama_server.base_url}/v1") as model:
        free = "".join(model.stream_chat(ask, short))
        shaped = "".join(model.stream_chat(ask, short, reply_format=ReplyFormat()))
    assert free.strip() and not free.lstrip().startswith("{")
    assert shaped.lstrip().startswith("{")
