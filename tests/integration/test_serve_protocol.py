"""``localchat serve`` speaks ``localchat.protocol``: hostile bodies, a missing model and
refused fields are 400s naming the problem on both APIs (through the official ``openai``
SDK and ``ollama`` client where they can send it), and every request is one line of the
request log (never a prompt or a key).  A real server on 127.0.0.1, the real gemma."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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

AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
MODEL = "gemma-3-270m"
SECRET_PROMPT = "Zebra-quokka seventeen"  # must never reach the log
GENERATION_PATHS = ["/v1/chat/completions", "/v1/completions", "/api/chat", "/api/generate"]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    yield from keyed_server(tmp_path_factory, shared_pip_models)


def _body_for(path: str, text: str) -> bytes:
    """A request for ``path`` whose only text is ``text`` (already JSON-escaped)."""
    if path in ("/v1/completions", "/api/generate"):
        return b'{"model": "' + MODEL.encode() + b'", "prompt": "' + text.encode() + b'"}'
    return (
        b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
        + text.encode() + b'"}]}'
    )  # fmt: skip


def _error_text(path: str, reply: httpx.Response) -> str:
    error = reply.json()["error"]
    if path.startswith("/v1"):
        assert set(error) == {"message", "type", "param", "code"}
        return str(error["message"])
    assert isinstance(error, str)
    return error


def _still_serves(server: RunningServer) -> None:
    client = openai_client(server)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    assert reply.choices[0].message.content is not None


@pytest.mark.parametrize("path", GENERATION_PATHS)
def test_hostile_bodies_are_400_not_500(server: RunningServer, path: str) -> None:
    url = f"{server.base_url}{path}"
    deep = b'{"model": "gemma-3-270m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for body in (_body_for(path, "\\ud800"), _body_for(path, "a\\udfffb"), deep):
        started = time.monotonic()
        reply = httpx.post(url, content=body, headers=AUTH, timeout=30)
        assert reply.status_code == 400, reply.text
        assert "not valid JSON" in _error_text(path, reply)
        assert time.monotonic() - started < 10  # bounded, not a speed target
    _still_serves(server)


@pytest.mark.parametrize("path", GENERATION_PATHS)
def test_a_missing_or_empty_model_is_400_naming_it(server: RunningServer, path: str) -> None:
    url = f"{server.base_url}{path}"
    good = _body_for(path, "Hi")
    for body in (good.replace(b'"gemma-3-270m"', b'""'), good.replace(b'"gemma-3-270m"', b'" "'),
                 good.replace(b'"model": "gemma-3-270m", ', b"")):  # fmt: skip
        reply = httpx.post(url, content=body, headers=AUTH, timeout=30)
        assert reply.status_code == 400, (body, reply.text)
        assert _error_text(path, reply).startswith("model: a model name is required")


def test_the_openai_sdk_gets_400s_naming_refused_fields(server: RunningServer) -> None:
    client = openai_client(server)
    messages = [{"role": "user", "content": "Hi"}]
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    cases = [
        ({"functions": [tool["function"]]}, "functions"),
        ({"tools": [tool], "response_format": {"type": "json_object"}}, "response_format"),
        ({"n": 9}, "n"),  # more choices than the 8 a request may have
        ({"logprobs": True}, "logprobs"),
        ({"model": ""}, "model"),
        ({"extra_body": {"mirostat": 2}}, "mirostat"),
    ]
    for extra, named in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**{"model": MODEL, "messages": messages, **extra})
        assert caught.value.status_code == 400
        assert caught.value.body["message"].startswith(f"{named}: "), caught.value.body
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.BadRequestError, match="projector"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": image}])
    _still_serves(server)


def test_the_ollama_client_gets_400s_naming_refused_fields(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    messages = [{"role": "user", "content": "Hi"}]
    cases = [
        ({"format": {"type": "object", "properties": {"n": {"type": "integer",
                                                            "multipleOf": 2}}}}, "format"),
        ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools[0]"),
        ({"options": {"mirostat": 1}}, "options.mirostat"),
        ({"messages": [{"role": "user", "content": "Hi", "images": ["AAAA"]}]},
         "messages[0].images"),
    ]  # fmt: skip
    for extra, named in cases:
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(**{"model": MODEL, "messages": messages, **extra})
        assert caught.value.status_code == 400 and caught.value.error.startswith(f"{named}: ")
    reply = client.chat(model=MODEL, messages=messages, think=False,
                        options={"num_predict": 3, "temperature": 0, "num_gpu": 0})  # fmt: skip
    assert reply.done and reply.message.thinking is None  # harmless option, think honoured


def test_every_request_is_one_log_line_without_prompts_or_keys(server: RunningServer) -> None:
    client = openai_client(server)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=4,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    usage = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    refused = httpx.get(f"{server.base_url}/api/tags", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    logged = _wait_for_line(server, f"prompt_tokens={usage.prompt_tokens}")
    assert logged.startswith("localchat serve: POST /v1/chat/completions 200 ")
    assert f"model={MODEL} " in logged
    assert logged.endswith(f"completion_tokens={usage.completion_tokens}")
    # a line is written once its response is sent: the client may read the answer first
    assert _wait_for_line(server, "GET /api/tags 401 ").startswith("localchat serve: ")
    log_path = next(server.home.rglob("serve.log"))  # type: ignore[union-attr]
    log_file = _wait_for(lambda: log_path.read_text(), "GET /api/tags 401")
    assert "POST /v1/chat/completions 200" in log_file
    for text in (server.log(), log_file):
        assert SECRET_PROMPT not in text and API_KEY not in text and "nope" not in text


def test_quiet_keeps_request_lines_off_stderr_only(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path
) -> None:
    home = server_home(tmp_path_factory, shared_pip_models)
    servers = start_localchat_server(home, "--no-pull", "--quiet")
    quiet = next(servers)
    try:
        assert httpx.get(f"{quiet.base_url}/api/tags").status_code == 200
        log_file = home / "never"
        for _ in range(100):
            found = list(home.rglob("serve.log"))
            if found and "GET /api/tags 200" in found[0].read_text():
                log_file = found[0]
                break
            time.sleep(0.05)
        assert "GET /api/tags 200" in log_file.read_text()
        assert "GET /api/tags" not in quiet.log()
    finally:
        servers.close()


def _wait_for_line(server: RunningServer, needle: str, timeout_s: float = 20.0) -> str:
    """The log line holding ``needle`` (a stream's line is written when it ends)."""
    text = _wait_for(server.log, needle, timeout_s)
    return next(line for line in text.splitlines() if needle in line)


def _wait_for(read: Callable[[], str], needle: str, timeout_s: float = 20.0) -> str:
    """What ``read`` returns once it holds ``needle`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in (text := read()):
            return text
        time.sleep(0.1)
    raise AssertionError(f"nothing with {needle!r} in:\n{read()}")
