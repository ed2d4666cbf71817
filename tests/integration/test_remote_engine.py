"""Remote engines: ``ask --engine`` against llama-cpp-python's own server, and ``ask``
finding a running ``localchat serve`` by itself (``--local`` opting out).  Both servers
are real processes on 127.0.0.1 with the real gemma-3-270m GGUF."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localchat.errors import ExitCode
from tests.conftest import unused_port
from tests.fixtures.servers import RunningServer, server_home, start_localchat_server
from tests.integration.cli import assert_one_clean_error_line, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")

GREEDY = ("--temperature", "0", "--seed", "5", "--max-tokens", "8")
PROMPT = "Complete: the capital of France is"


@pytest.fixture(scope="module")
def localchat_server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(home, "--threads", "2", "--no-pull")


def test_ask_engine_streams_from_llama_cpp_server(
    localchat_home: Path, llama_server: RunningServer
) -> None:
    url = f"{llama_server.base_url}/v1"
    result = run_localchat(localchat_home, "ask", "--engine", url, "--json", *GREEDY, PROMPT)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "gemma-270m"  # the server's name, the first it lists
    assert payload["engine"] == f"remote engine {url}"
    assert payload["file"] is None
    # llama_cpp.server sends no usage when streaming: tokens are counted as chunks arrive
    assert payload["text"].strip() and 0 < payload["completion_tokens"] <= 8
    assert payload["time_to_first_token_s"] > 0
    plain = run_localchat(
        localchat_home, "ask", *GREEDY, PROMPT, LOCALCHAT_ENGINE=llama_server.base_url
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == payload["text"].strip()


def test_engine_errors_are_one_line(localchat_home: Path, llama_server: RunningServer) -> None:
    down = f"http://127.0.0.1:{unused_port()}/v1"
    result = run_localchat(localchat_home, "ask", "--engine", down, "hi")
    assert_one_clean_error_line(result, ExitCode.ENGINE_FAILED)
    missing = run_localchat(
        localchat_home, "ask", "--engine", llama_server.base_url, "-m", "nope", "hi"
    )
    assert_one_clean_error_line(missing, ExitCode.MODEL_NOT_FOUND)
    assert "gemma-270m" in missing.stderr  # what the server does have
    bad_url = run_localchat(localchat_home, "ask", "--engine", "ftp://x", "hi")
    assert_one_clean_error_line(bad_url, ExitCode.USAGE)


def test_ask_uses_a_running_localchat_server(
    localchat_home: Path, localchat_server: RunningServer
) -> None:
    host = f"127.0.0.1:{localchat_server.port}"
    args = ("ask", "--json", "-m", "gemma-3-270m", *GREEDY, "The sky is")
    served = run_localchat(localchat_home, *args, LOCALCHAT_HOST=host)
    assert served.returncode == 0, served.stderr
    served_json = json.loads(served.stdout)
    assert served_json["engine"] == f"localchat server http://{host}/v1"
    ps = httpx.get(f"{localchat_server.base_url}/api/ps").json()["models"]
    assert ps and ps[0]["localchat"]["requests"] >= 1  # it really went through the server

    local = run_localchat(localchat_home, *args, "--local", LOCALCHAT_HOST=host)
    assert local.returncode == 0, local.stderr
    local_json = json.loads(local.stdout)
    assert local_json["engine"] == "in-process llama.cpp"
    # Same model, format, sampling and seed: the same answer either way (the remote side
    # splits <thinking> from the answer, which trims the answer's outer whitespace).
    assert served_json["text"] == local_json["text"].strip()
    assert served_json["completion_tokens"] == local_json["completion_tokens"]


def test_server_errors_keep_their_exit_codes(
    localchat_home: Path, localchat_server: RunningServer
) -> None:
    host = f"127.0.0.1:{localchat_server.port}"
    result = run_localchat(localchat_home, "ask", "-m", "no-such-model", "hi", LOCALCHAT_HOST=host)
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)


def test_ask_without_a_model_asks_the_server_for_its_default(
    localchat_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    shared_pip_models: Path,
    gemma_path: Path,
) -> None:
    """A request must name its model; ``ask`` without -m names the server's default
    ("default"), which here is the offline fallback (the hub is unreachable), loaded once
    and then used by its own name."""
    home = server_home(tmp_path_factory, shared_pip_models)
    servers = start_localchat_server(home, "--threads", "2", "--no-pull")
    server = next(servers)
    try:
        host = f"127.0.0.1:{server.port}"
        served = run_localchat(
            localchat_home, "ask", "--json", *GREEDY, "The sky is", LOCALCHAT_HOST=host
        )
        assert served.returncode == 0, served.stderr
        payload = json.loads(served.stdout)
        assert payload["engine"] == f"localchat server http://{host}/v1"
        assert payload["model"] == "gemma-3-270m" and payload["text"].strip()
        ps = httpx.get(f"{server.base_url}/api/ps").json()["models"]
        assert [(m["name"], m["localchat"]["requests"]) for m in ps] == [("gemma-3-270m", 1)]
        empty = httpx.post(f"{server.base_url}/api/generate", json={"model": ""})
        assert empty.status_code == 400 and "model" in empty.json()["error"]
    finally:
        servers.close()
