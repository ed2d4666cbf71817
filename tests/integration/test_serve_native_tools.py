"""A native tool-call syntax end to end: Gemma 3 270M's weights with Qwen 2.5's real chat
template (``tests/fixtures/templates``) written into its GGUF by the test, pulled from the
loopback fake hub and served by a real ``localchat serve``.

Why these weights: a tiny written model cannot generate anything meaningful, and no
instruct model with a tool syntax fits here; the 270M base model's weights under the
grammar-forced path (``tool_choice`` required or named) still write real
``<tool_call>{…}</tool_call>`` blocks, token by token, through the same prompt, grammar
and streaming parser a Qwen 2.5 model gets.  So this proves the wire shapes, the Hermes
prompt and parser, and that tool turns in the history render through the template's own
``<tool_call>`` / ``<tool_response>`` markup — not that a model chooses well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.fakehub import FakeHub, hub_env
from tests.fixtures.servers import (
    API_KEY,
    RunningServer,
    openai_client,
    server_home,
    start_localchat_server,
)
from tests.integration.cli import localchat_env

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")
jsonschema = pytest.importorskip("jsonschema")

REPO = "localchat-test/Gemma-Qwen-Template-GGUF"
FILE = "Gemma-Qwen-Template-Q4_K_M.gguf"
MODEL = f"{REPO}:Q4_K_M"
TEMPLATE = Path(__file__).parents[1] / "fixtures" / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMETERS,
                                         "description": "Current weather for a city"}}  # fmt: skip
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
GREEDY = {"temperature": 0, "seed": 3, "max_tokens": 80}


def with_template(source: Path, template: str, out: Path) -> Path:
    """``source``'s GGUF with its chat template replaced (weights and vocabulary kept)."""
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(source, "r")
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(out, arch=arch, endianess=reader.endianess)
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    copy_with_new_metadata(reader, writer, new, [])
    return out


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[tuple[RunningServer, Path]]:
    folder = tmp_path_factory.mktemp("qwen-template")
    model_file = with_template(gemma_path, TEMPLATE.read_text(encoding="utf-8"), folder / FILE)
    home = server_home(tmp_path_factory, shared_pip_models)
    with FakeHub(folder / "hub") as hub:
        hub.add_repo(REPO, {FILE: model_file})
        env = hub_env(hub)
        for server in start_localchat_server(home, "--api-key", API_KEY, "--threads", "2", **env):
            yield server, home


@pytest.fixture
def client(served: tuple[RunningServer, Path]) -> openai.OpenAI:
    server, _ = served
    return openai_client(server)


def assert_valid(calls: list) -> None:
    assert calls
    for call in calls:
        assert call.function.name == "get_weather" and call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS)


def test_required_call_in_the_hermes_syntax(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[TOOL], tool_choice="required",
        parallel_tool_calls=False, **GREEDY,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert_valid(choice.message.tool_calls)


def test_named_call_streamed_and_assembled(client: openai.OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    with client.chat.completions.stream(
        model=MODEL, messages=ASK, tools=[TOOL], tool_choice=named, parallel_tool_calls=False,
        **GREEDY,
    ) as stream:  # fmt: skip
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert_valid(final.choices[0].message.tool_calls)
    assert len(final.choices[0].message.tool_calls) == 1


def test_history_with_calls_and_results_renders_through_the_template(
    client: openai.OpenAI,
) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[TOOL], tool_choice="required",
        parallel_tool_calls=False, **GREEDY,
    )  # fmt: skip
    message = first.choices[0].message
    history = [
        *ASK,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "31 C, sunny"},
    ]
    answer = client.chat.completions.create(
        model=MODEL, messages=history, tools=[TOOL], tool_choice="none", **GREEDY
    )
    assert answer.choices[0].message.content is not None
    assert answer.choices[0].finish_reason in ("stop", "length")
    alone = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[TOOL], tool_choice="none", max_tokens=1
    )
    assert answer.usage.prompt_tokens > alone.usage.prompt_tokens + 10  # the call and result


def test_ollama_client_gets_calls_with_object_arguments(
    served: tuple[RunningServer, Path],
) -> None:
    server, _ = served
    client = ollama.Client(host=server.base_url, headers=AUTH)
    options = {"temperature": 0, "seed": 3, "num_predict": 80, "tool_choice": "required",
               "parallel_tool_calls": False}  # fmt: skip
    reply = client.chat(model=MODEL, messages=ASK, tools=[TOOL], options=options)
    (call,) = reply.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(dict(call.function.arguments), PARAMETERS)


def test_capabilities_and_show_name_the_native_syntax(served: tuple[RunningServer, Path]) -> None:
    server, home = served
    shown = httpx.post(f"{server.base_url}/api/show", json={"model": MODEL}, headers=AUTH)
    assert shown.status_code == 200, shown.text
    assert shown.json()["capabilities"] == ["completion", "tools"]
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "show", MODEL],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**localchat_env(home), "LOCALCHAT_HOST": "off"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tools:         native (hermes syntax)" in result.stdout


def test_the_prompt_and_grammar_are_qwen_s(served: tuple[RunningServer, Path]) -> None:
    """In process, on the pulled file: the prompt lists the tools the way Qwen's template
    does, the grammar writes <tool_call> blocks, and earlier calls and results render as
    the template's own markup."""
    from localchat.api import open_model
    from localchat.types import Message, ToolCall, ToolSpec, ToolUse

    _, home = served
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALCHAT_HOME", str(home))
        model = open_model(MODEL, allow_download=False, local=True, n_ctx=1024, n_threads=2)
    with model:
        tools = ToolUse((ToolSpec("get_weather", "Current weather", PARAMETERS),), "required")
        history = [
            Message("user", "Weather in Paris?"),
            Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, "c1"),)),
            Message("tool", "31 C", tool_call_id="c1"),
        ]
        prepared = model.prepare_chat(history, tool_use=tools)
        text = prepared.prompt.text
        assert "<tools>" in text and "<tool_response>\n31 C" in text
        assert '<tool_call>\n{"name": "get_weather"' in text
        assert '"<tool_call>"' in (prepared.sampling.grammar or "")
        reply = model.call_tools(history, [tools.tools[0]], choice="required", parallel=False)
        assert [call.name for call in reply.calls] == ["get_weather"]
        jsonschema.validate(dict(reply.calls[0].arguments), PARAMETERS)
        data = model.structured("Name a city.", {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 20}}, "required": ["city"]})  # fmt: skip
        assert set(data) == {"city"}
