"""``localchat serve`` with the real gemma-3-270m, driven by clients nobody here wrote:
the official ``openai`` SDK (sync, async, streaming and not) and the ``ollama`` client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import (
    API_KEY,
    RunningServer,
    keyed_server,
    openai_client,
    server_home,
    start_localchat_server,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "The capital of France is"}]
GREEDY = {"temperature": 0, "seed": 3, "max_tokens": 8}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    yield from keyed_server(tmp_path_factory, shared_pip_models)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai_client(server)


def _ps(server: RunningServer) -> list[dict]:
    reply = httpx.get(f"{server.base_url}/api/ps", headers={"Authorization": f"Bearer {API_KEY}"})
    return reply.json()["models"]


def test_models_lists_the_pip_model(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "gemma-3-270m:Q4_K_M" in ids


def test_chat_completion_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.prompt_tokens > 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_equals_non_streaming_at_temperature_zero(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY)
    stream = client.chat.completions.create(
        model=MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    assert len([p for p in pieces if p]) >= 2  # it streamed, not one lump
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_stop_and_max_tokens(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(
        model=MODEL, messages=PROMPT, **{**GREEDY, "max_tokens": 12}
    )
    text = free.choices[0].message.content
    assert free.usage.completion_tokens <= 12
    cut = text.strip().split()[0][:3]  # stop at the first word's start
    stopped = client.chat.completions.create(
        model=MODEL, messages=PROMPT, stop=[cut], **{**GREEDY, "max_tokens": 12}
    )
    assert cut not in stopped.choices[0].message.content
    assert len(stopped.choices[0].message.content) < len(text)


def test_completions_endpoint(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="One, two, three,", **GREEDY)
    assert reply.choices[0].text.strip()
    assert 0 < reply.usage.completion_tokens <= 8


def test_num_ctx_per_request_reloads_with_that_context(
    client: openai.OpenAI, server: RunningServer
) -> None:
    client.chat.completions.create(
        model=MODEL, messages=PROMPT, extra_body={"num_ctx": 1024}, **GREEDY
    )
    assert [m["context_length"] for m in _ps(server)] == [1024]
    client.chat.completions.create(
        model=MODEL, messages=PROMPT, extra_body={"num_ctx": 2048}, **GREEDY
    )
    assert [m["context_length"] for m in _ps(server)] == [2048]  # the idle 1024 one unloaded


def test_async_client_streams(server: RunningServer) -> None:
    async def run() -> str:
        async with openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=PROMPT, stream=True, **GREEDY
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()).strip()


def test_eight_concurrent_streams_get_what_each_gets_alone(server: RunningServer) -> None:
    prompts = [f"Item {n}: the colour of the sky is" for n in range(8)]

    async def one(client: openai.AsyncOpenAI, prompt: str) -> str:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True, **GREEDY
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def run() -> tuple[list[str], list[str]]:
        async with openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0
        ) as client:
            alone = [await one(client, p) for p in prompts]
            together = await asyncio.gather(*(one(client, p) for p in prompts))
            return alone, list(together)

    alone, together = asyncio.run(run())
    assert all(text.strip() for text in alone)
    # Side by side they are decoded in one batch, and llama.cpp's kernels are not
    # bit-identical across batch shapes: a near tie late in a reply may tip (" blue" then
    # the end, or " blue\n").  The start must agree; tests/integration/test_serve_slots.py
    # checks distinct prompts for cross-talk.
    assert [text.split()[:1] for text in together] == [text.split()[:1] for text in alone]


def test_disconnect_mid_stream_frees_the_model(
    server: RunningServer, client: openai.OpenAI
) -> None:
    before = {m["name"]: m["localchat"]["cancelled"] for m in _ps(server)}
    body = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "stream": True,
            "max_tokens": 3000, "temperature": 0}  # counting: long, neither ending nor looping  # fmt: skip
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream(
        "POST", f"{server.base_url}/v1/completions", json=body, headers=headers, timeout=60
    ) as reply:
        lines = reply.iter_lines()
        assert (
            sum(1 for _, line in zip(range(6), lines, strict=False) if line.startswith("data:"))
            >= 3
        )
    # The generation stops at its next token: the model is soon free and says it was cancelled.
    for _ in range(600):
        models = _ps(server)
        if models and not models[0]["localchat"]["busy"]:
            break
        time.sleep(0.1)
    assert not models[0]["localchat"]["busy"]
    assert models[0]["localchat"]["cancelled"] == before.get(models[0]["name"], 0) + 1
    assert (
        client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY)
        .choices[0]
        .message.content
    )


def test_ollama_client_chat_generate_and_listing(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    options = {"temperature": 0, "seed": 3, "num_predict": 8, "num_ctx": 2048}
    reply = client.chat(model=MODEL, messages=PROMPT, options=options)
    assert reply.message.role == "assistant" and reply.message.content.strip()
    assert reply.done and 0 < reply.eval_count <= 8 and reply.prompt_eval_count > 3
    streamed = list(client.chat(model=MODEL, messages=PROMPT, options=options, stream=True))
    assert streamed[-1].done and not any(part.done for part in streamed[:-1])
    assert "".join(part.message.content for part in streamed) == reply.message.content
    generated = client.generate(model=MODEL, prompt="One, two, three,", raw=True, options=options)
    assert generated.response.strip() and generated.done
    assert any(m.model == "gemma-3-270m:Q4_K_M" for m in client.list().models)
    running = client.ps().models
    assert running and running[0].context_length == 2048
    shown = client.show("gemma-3-270m:Q4_K_M")
    assert shown.details.quantization_level == "Q4_K_M" and shown.details.family == "gemma3"
    assert "completion" in shown.capabilities


def test_ollama_keep_alive_zero_unloads(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2}, keep_alive=0)
    for _ in range(100):
        if not _ps(server):
            break
        time.sleep(0.1)
    assert _ps(server) == []


def test_ollama_errors_reach_the_client(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="no-such-model", messages=PROMPT)
    assert caught.value.status_code == 404 and "unknown model" in caught.value.error
    bad_key = ollama.Client(host=server.base_url, headers={"Authorization": "Bearer wrong"})
    with pytest.raises(ollama.ResponseError) as caught:
        bad_key.list()
    assert caught.value.status_code == 401


def test_serve_history_saves_each_exchange(
    tmp_path_factory: pytest.TempPathFactory,
    shared_pip_models: Path,
    gemma_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`serve --history`: each request's turns and reply land in the history store that
    `ask` and the app read (streamed OpenAI chat and an Ollama generate)."""
    from localchat.history import HistoryStore

    home = server_home(tmp_path_factory, shared_pip_models)
    servers = start_localchat_server(home, "--threads", "2", "--no-pull", "--history")
    server = next(servers)
    try:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)
        system = {"role": "system", "content": "Be brief."}
        stream = client.chat.completions.create(
            model=MODEL, messages=[system, *PROMPT], stream=True, **GREEDY
        )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        generated = ollama.Client(host=server.base_url).generate(
            model=MODEL,
            prompt="Paris is the capital of",
            options={"temperature": 0, "num_predict": 4},
        )
        monkeypatch.setenv("LOCALCHAT_HOME", str(home))
        conversations = _saved_conversations(count=2)  # saved once each response has ended
    finally:
        servers.close()
    with HistoryStore() as history:
        chat, completion = (history.messages(c.id) for c in conversations)
    assert conversations[0].system_prompt == "Be brief."
    assert [(m.role, m.content) for m in chat[:1]] == [("user", PROMPT[0]["content"])]
    assert chat[1].role == "assistant" and chat[1].content.strip() == streamed.strip()
    assert completion[0].content == "Paris is the capital of"
    assert (
        generated.response.strip() and completion[1].content.strip() == generated.response.strip()
    )


def _saved_conversations(count: int, timeout_s: float = 20.0) -> list:
    from localchat.history import HistoryStore

    deadline = time.monotonic() + timeout_s
    while True:
        with HistoryStore() as history:
            found = sorted(history.list_conversations(), key=lambda c: c.id)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.1)
