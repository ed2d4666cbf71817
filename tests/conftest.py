"""Fixtures shared by every tier.  Tier-specific fixtures live in tests/fixtures/."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.awq_models",
    "tests.fixtures.gguf_files",
    "tests.fixtures.servers",
]
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def shared_pip_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ``pip-models`` folder for the whole session, which every test home links to;
    and the session's shared cache (``LOCALCHAT_SHARED_CACHE``, set for the whole session
    and so for every child process), where the pip model's one copy is assembled (its
    253 MB written once), never in the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALCHAT_SHARED_CACHE", str(tmp_path_factory.mktemp("shared-cache")))
        yield tmp_path_factory.mktemp("pip-models")


@pytest.fixture(autouse=True)
def localchat_home(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    shared_pip_models: Path,
) -> Path:
    """Every test gets its own LOCALCHAT_HOME, so nothing touches the user's files.
    Its ``data/pip-models`` links to the session's, so the pip model is assembled once."""
    home = tmp_path_factory.mktemp("localchat-home")
    (home / "data").mkdir()
    (home / "data" / "pip-models").symlink_to(shared_pip_models, target_is_directory=True)
    monkeypatch.setenv("LOCALCHAT_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    # `ask`, the app and the API use a localchat server when one answers: point them at a
    # port nothing listens on, so no test talks to a server another test (or person) runs.
    monkeypatch.setenv("LOCALCHAT_HOST", f"127.0.0.1:{unused_port()}")
    monkeypatch.delenv("LOCALCHAT_ENGINE", raising=False)
    monkeypatch.delenv("LOCALCHAT_API_KEY", raising=False)
    monkeypatch.delenv("LOCALCHAT_RPC", raising=False)
    # Child Python processes import this checkout's localchat, not an installed copy.
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), inherited])))
    return home


def unused_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def gemma_path(shared_pip_models: Path) -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, delivered by the pip package (the offline-model
    extra; a third-party package, so its absence skips rather than fails)."""
    from localchat.catalog import load_catalog
    from localchat.store.pip_models import pip_model_file

    entry = load_catalog().get("gemma-3-270m")
    assert entry is not None and entry.pip is not None
    pytest.importorskip(entry.pip.module)
    path = pip_model_file(entry.name, entry.pip, directory=shared_pip_models)
    assert path is not None
    return path
