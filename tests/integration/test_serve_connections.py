"""``localchat serve``'s connections cannot be held hostage (issue 17): real servers on
127.0.0.1 and raw sockets that never finish their requests.

Before: with 300 idle half-open connections every new request got 503 at once
(uvicorn's ``limit_concurrency`` counted sockets, and nothing timed out an unfinished
request).  Now unfinished requests time out, idle keep-alive connections close, limits
count requests, and SIGTERM drains.  Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import API_KEY, RunningServer, server_home, start_localchat_server

openai = pytest.importorskip("openai")

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HALF_OPEN = 500
TIMEOUT_S = 2.0  # the servers' --request-timeout here
PARTIAL_HEADERS = b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(
        home, "--api-key", API_KEY, "--no-pull", "--request-timeout", str(TIMEOUT_S)
    )


@pytest.fixture(scope="module")
def patient_server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path
) -> Iterator[RunningServer]:
    """A long request timeout, so that the half-open sockets stay open while we ask."""
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(
        home, "--api-key", API_KEY, "--no-pull", "--request-timeout", "60"
    )


def _connect(server: RunningServer, timeout_s: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s)


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long it took."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


@contextlib.contextmanager
def _open_files_for(count: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the open-files hard limit ({hard}) is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_half_open_connections_do_not_lock_out_a_real_client(
    patient_server: RunningServer,
) -> None:
    client = openai.OpenAI(
        base_url=f"{patient_server.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=10
    )
    client.models.list()  # warm: the first listing imports the model store
    with _open_files_for(HALF_OPEN), contextlib.ExitStack() as held:
        for _ in range(HALF_OPEN):
            sock = held.enter_context(_connect(patient_server))
            sock.sendall(PARTIAL_HEADERS)  # headers never finished
        started = time.monotonic()
        listed = client.models.list()  # a real client, through the official SDK
        elapsed_s = time.monotonic() - started
        tags = httpx.get(f"{patient_server.base_url}/api/tags", headers=AUTH, timeout=10)
        still_open = held.enter_context(_connect(patient_server))  # one more is accepted
        still_open.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert still_open.recv(64).startswith(b"HTTP/1.1 200")
    assert listed.object == "list" and tags.status_code == 200
    assert elapsed_s < 5.0, elapsed_s  # a bound for a loaded CI machine, not a speed target


def test_unfinished_headers_are_timed_out(server: RunningServer) -> None:
    with _connect(server) as sock:
        sock.sendall(PARTIAL_HEADERS)
        received, waited_s = _read_until_closed(sock, limit_s=TIMEOUT_S + 10)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT_S - 0.5 <= waited_s < TIMEOUT_S + 10


def test_a_silent_connection_is_timed_out(server: RunningServer) -> None:
    with _connect(server) as sock:
        received, waited_s = _read_until_closed(sock, limit_s=TIMEOUT_S + 10)
    assert received.startswith(b"HTTP/1.1 408 ") and waited_s >= TIMEOUT_S - 0.5


def test_a_trickle_of_header_bytes_does_not_reset_the_deadline(server: RunningServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        with contextlib.suppress(OSError):  # the server may close while we trickle
            for _ in range(int(TIMEOUT_S * 4)):
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)
        received, _ = _read_until_closed(sock, limit_s=TIMEOUT_S + 10)
    assert time.monotonic() - started < TIMEOUT_S * 4 + 10
    assert received.startswith(b"HTTP/1.1 408 ")


def test_an_unfinished_body_is_timed_out_and_the_server_keeps_serving(
    server: RunningServer,
) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(head + b'{"model": ')  # 10 of the 100 bytes promised
        received, waited_s = _read_until_closed(sock, limit_s=TIMEOUT_S + 10)
    assert received == b"" and TIMEOUT_S - 0.5 <= waited_s < TIMEOUT_S + 10
    assert httpx.get(f"{server.base_url}/v1/models", headers=AUTH).status_code == 200


def test_an_idle_keep_alive_connection_is_closed(server: RunningServer) -> None:
    from localchat.server.connections import IDLE_CONNECTION_S

    with _connect(server) as sock:
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received, waited_s = _read_until_closed(sock, limit_s=IDLE_CONNECTION_S + 10)
    assert received.startswith(b"HTTP/1.1 200") and b"localchat" in received
    assert IDLE_CONNECTION_S - 0.5 <= waited_s < IDLE_CONNECTION_S + 10


@pytest.mark.llama
@pytest.mark.slow
def test_sigterm_drains_then_exits_0(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> None:
    """An answer being streamed finishes; new connections are refused; exit status 0."""
    pytest.importorskip("llama_cpp")
    home = server_home(tmp_path_factory, shared_pip_models)
    servers = start_localchat_server(home, "--threads", "2", "--no-pull")
    server = next(servers)
    try:
        body = {"model": "gemma-3-270m", "prompt": "1, 2, 3, 4, 5,", "stream": True,
                "max_tokens": 24, "temperature": 0}  # fmt: skip
        with httpx.stream(
            "POST", f"{server.base_url}/v1/completions", json=body, timeout=120
        ) as reply:
            lines = reply.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))  # generating
            server.process.send_signal(signal.SIGTERM)
            _wait_refused(server)
            rest = [line for line in lines if line.startswith("data:")]
        assert rest[-1] == "data: [DONE]"
        assert '"finish_reason":"length"' in rest[-2]  # every token asked for came
        assert server.process.wait(timeout=60) == 0, server.log()
    finally:
        servers.close()


def _wait_refused(server: RunningServer, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            _connect(server, timeout_s=1.0).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError(f"still accepting connections {limit_s} s after SIGTERM")
