"""``/api/pull`` through ``localchat serve`` with the ``ollama`` client: progress lines, then
success, then the model is listed.  The hub is the loopback fake hub (the internet hub
cannot be reached here); the server, the client and the downloader are real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fakehub import FakeHub, hub_env, make_gguf_like
from tests.fixtures.fakehub import fake_hub as fake_hub  # the fixture, re-exported
from tests.fixtures.servers import RunningServer, server_home, start_localchat_server

ollama = pytest.importorskip("ollama")
REPO = "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF"
FILE = "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"


@pytest.fixture
def server(
    fake_hub: FakeHub,
    tmp_path_factory: pytest.TempPathFactory,
    shared_pip_models: Path,
) -> Iterator[RunningServer]:
    fake_hub.add_repo(REPO, {FILE: make_gguf_like(3_000_000, 5), "README.md": b"hi"})
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(home, **hub_env(fake_hub))


def test_pull_streams_progress_then_lists_the_model(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url)
    events = list(client.pull(f"{REPO}:Q4_K_M", stream=True))
    assert events[0].status == "pulling manifest"
    assert events[-1].status == "success"
    sized = [e for e in events if e.total]
    assert sized and sized[-1].total == 3_000_000 and sized[-1].completed == 3_000_000
    names = [m.model.lower() for m in client.list().models]
    assert f"{REPO}:Q4_K_M".lower() in names


def test_pull_errors_reach_the_client(server: RunningServer) -> None:
    client = ollama.Client(host=server.base_url)
    with pytest.raises(ollama.ResponseError):
        list(client.pull("nobody/Missing-GGUF:Q4_K_M", stream=True))
    with pytest.raises(ollama.ResponseError) as caught:
        client.pull("../../etc/passwd")
    assert caught.value.status_code == 400
