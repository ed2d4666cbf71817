"""The client lines README.md and ``localchat serve --help`` document really connect: each
is run with the client's own connection code against a real server on 127.0.0.1.

oterm itself cannot be installed beside localchat's pinned dependencies (oterm 0.26.1
pulls older pydantic, ollama and huggingface-hub), so its one line of connection code is
replayed here: oterm 0.26 builds ``OLLAMA_URL = f"http://{OLLAMA_HOST}"`` (``oterm/config.py``)
and hands it to the ``ollama`` client, which is real.  The ``ollama`` client's own
``OLLAMA_HOST`` parsing is exercised as well, and the README's Python line runs as written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat.cli.serve_cmd import SERVE_EPILOG
from localchat.server.config import DEFAULT_PORT
from tests.conftest import REPO_ROOT
from tests.fixtures.servers import RunningServer, server_home, start_localchat_server

ollama = pytest.importorskip("ollama")
openai = pytest.importorskip("openai")

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    yield from start_localchat_server(home, "--threads", "2", "--no-pull")


def _documented_ollama_hosts() -> list[str]:
    found = re.findall(r"OLLAMA_HOST=(\S+) oterm", README + SERVE_EPILOG)
    assert len(found) >= 2, "README and serve --help each document the oterm line"
    return found


def _on(server: RunningServer, documented: str) -> str:
    return documented.replace(str(DEFAULT_PORT), str(server.port))


def test_the_documented_oterm_line_connects(server: RunningServer) -> None:
    for documented in _documented_ollama_hosts():
        ollama_host = _on(server, documented)
        oterm_url = f"http://{ollama_host}"  # oterm 0.26's config.py, verbatim
        listed = ollama.Client(host=oterm_url).list()
        assert any(m.model == "gemma-3-270m:Q4_K_M" for m in listed.models), documented


def test_the_ollama_client_reads_the_documented_host(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for documented in _documented_ollama_hosts():
        monkeypatch.setenv("OLLAMA_HOST", _on(server, documented))
        assert ollama.Client().list().models  # the client's own OLLAMA_HOST parsing


def test_the_old_documented_form_does_not_connect_with_oterm(server: RunningServer) -> None:
    """What README said before: oterm would build ``http://http://...``."""
    oterm_url = f"http://http://127.0.0.1:{server.port}"
    with pytest.raises((ConnectionError, ollama.ResponseError)):
        ollama.Client(host=oterm_url).list()


def test_the_documented_openai_sdk_lines_connect(server: RunningServer) -> None:
    for base_url in re.findall(r'OpenAI\(base_url="([^"]+)"', README + SERVE_EPILOG):
        client = openai.OpenAI(base_url=_on(server, base_url), api_key="-", max_retries=0)
        assert any(m.id == "gemma-3-270m:Q4_K_M" for m in client.models.list())


@pytest.mark.llama
@pytest.mark.slow
def test_the_readme_python_line_runs_as_written(server: RunningServer) -> None:
    pytest.importorskip("llama_cpp")
    program = re.search(r"python -c '(.+?)'\n", README, re.DOTALL)
    assert program is not None
    result = subprocess.run(
        [sys.executable, "-c", _on(server, program.group(1))],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ChatCompletion(") and "content=" in result.stdout
