"""``localchat serve`` is safe by default: plain HTTP (httpx) against real servers on
127.0.0.1 for auth, size limits, CORS, path-like model names, bad input and a full queue;
after each refusal the server keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localchat.errors import ExitCode
from tests.fixtures.servers import API_KEY, RunningServer, server_home, start_localchat_server
from tests.integration.cli import assert_one_clean_error_line, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = {
    "model": "gemma-3-270m",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 4,
    "temperature": 0,
}
ORIGIN = "https://allowed.example"
# A long generation that neither ends nor loops soon: counting, greedily.
COUNTING = {"model": "gemma-3-270m", "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "stream": True,
            "max_tokens": 3000, "temperature": 0}  # fmt: skip


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(
        home, "--api-key", API_KEY, "--max-body-mb", "1", "--max-prompt-chars", "2000",
        "--max-queue", "1", "--cors", ORIGIN, "--no-pull", "--threads", "2",
        "--parallel", "1",  # one slot: a second request queues (the queue's tests)
    )  # fmt: skip


@pytest.fixture(scope="module")
def plain(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(home, "--no-pull")


def _still_serves(server: RunningServer) -> None:
    reply = httpx.post(
        f"{server.base_url}/v1/chat/completions", json=CHAT, headers=AUTH, timeout=60
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] is not None


def test_public_bind_without_key_is_refused(localchat_home: Path) -> None:
    result = run_localchat(
        localchat_home, "serve", "--host", "0.0.0.0", "--port", "1", timeout_s=60
    )
    assert_one_clean_error_line(result, ExitCode.USAGE)
    assert "--api-key" in result.stderr


def test_taken_port_is_one_clear_error(localchat_home: Path, plain: RunningServer) -> None:
    result = run_localchat(localchat_home, "serve", "--port", str(plain.port), timeout_s=60)
    assert_one_clean_error_line(result, ExitCode.USAGE)
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}]
)
def test_missing_or_wrong_key_is_401(guarded: RunningServer, headers: dict[str, str]) -> None:
    reply = httpx.get(f"{guarded.base_url}/v1/models", headers=headers)
    assert reply.status_code == 401
    assert reply.json()["error"]["type"] == "authentication_error"
    ollama_reply = httpx.get(f"{guarded.base_url}/api/tags", headers=headers)
    assert ollama_reply.status_code == 401 and "API key" in ollama_reply.json()["error"]
    assert httpx.get(f"{guarded.base_url}/v1/models", headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "~/model.gguf",
        "models/x.gguf",
        "a/../../b",
        "C:\\x\\y",
        "./gemma",
    ],
)
def test_path_like_model_names_are_refused(guarded: RunningServer, name: str) -> None:
    reply = httpx.post(
        f"{guarded.base_url}/v1/chat/completions", json={**CHAT, "model": name}, headers=AUTH
    )
    assert reply.status_code == 400, reply.text
    assert "not a model name" in reply.json()["error"]["message"]
    shown = httpx.post(f"{guarded.base_url}/api/show", json={"model": name}, headers=AUTH)
    assert shown.status_code == 400


def test_bad_input_gets_clear_errors_and_the_server_keeps_serving(guarded: RunningServer) -> None:
    url = f"{guarded.base_url}/v1/chat/completions"
    cases = [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"model": "gemma-3-270m", "messages": []}', 400),
        (
            b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "x"}], "temperature": -1}',
            400,
        ),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}', 404),
    ]
    for body, status in cases:
        reply = httpx.post(url, content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert reply.status_code == status, (body, reply.text)
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert httpx.post(f"{guarded.base_url}/api/chat", content=b"{", headers=AUTH).json()["error"]
    _still_serves(guarded)


def test_body_and_prompt_size_caps(guarded: RunningServer) -> None:
    url = f"{guarded.base_url}/v1/chat/completions"
    big = (
        b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "'
        + b"x" * 2_000_000
        + b'"}]}'
    )
    assert httpx.post(url, content=big, headers=AUTH).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    assert httpx.post(url, content=chunked(), headers=AUTH).status_code == 413
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "y" * 3000}]}
    reply = httpx.post(url, json=long_prompt, headers=AUTH)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "request_too_large"
    _still_serves(guarded)


def test_cors_only_for_the_origin_asked_for(guarded: RunningServer, plain: RunningServer) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = httpx.options(f"{guarded.base_url}/v1/chat/completions", headers=preflight)
    assert allowed.headers.get("access-control-allow-origin") == ORIGIN
    other = httpx.options(
        f"{guarded.base_url}/v1/chat/completions",
        headers={**preflight, "Origin": "https://evil.example"},
    )
    assert other.headers.get("access-control-allow-origin") is None
    off = httpx.get(f"{plain.base_url}/v1/models", headers={"Origin": ORIGIN})
    assert off.status_code == 200 and "access-control-allow-origin" not in off.headers


def test_full_queue_is_503_and_the_queue_drains(guarded: RunningServer) -> None:
    url = f"{guarded.base_url}/v1/chat/completions"
    waiting_result: list[httpx.Response] = []
    long_url = f"{guarded.base_url}/v1/completions"
    with httpx.stream("POST", long_url, json=COUNTING, headers=AUTH, timeout=60) as holder:
        lines = holder.iter_lines()  # kept: a dropped iterator closes the connection
        assert next(lines).startswith("data:")  # generating now
        waiter = threading.Thread(
            target=lambda: waiting_result.append(
                httpx.post(url, json=CHAT, headers=AUTH, timeout=120)
            )
        )
        waiter.start()
        for _ in range(600):  # until the second request is queued (a busy CI machine is slow)
            models = httpx.get(f"{guarded.base_url}/api/ps", headers=AUTH).json()["models"]
            if models and models[0]["localchat"]["waiting"] == 1:
                break
            time.sleep(0.05)
        assert models[0]["localchat"]["waiting"] == 1 and models[0]["localchat"]["busy"]
        refused = httpx.post(url, json=CHAT, headers=AUTH)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "server_busy"
    waiter.join(timeout=120)
    assert waiting_result and waiting_result[0].status_code == 200
    _still_serves(guarded)


def test_more_choices_than_slots_is_a_400_naming_n(guarded: RunningServer) -> None:
    """`--parallel 1` (as AWQ always is): `n` 2 cannot run side by side, and says so."""
    url = f"{guarded.base_url}/v1/chat/completions"
    reply = httpx.post(url, json={**CHAT, "n": 2}, headers=AUTH, timeout=60)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert message.startswith("n: 2 choices asked for, but gemma-3-270m generates 1 reply at once")
    models = httpx.get(f"{guarded.base_url}/api/ps", headers=AUTH).json()["models"]
    assert models[0]["localchat"]["slots"] == 1 and models[0]["localchat"]["busy"] == 0
    _still_serves(guarded)
