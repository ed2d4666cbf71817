"""Fixtures for the app's tests: an app wired to a scripted model and a temporary store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localchat.history import HistoryStore
from localchat.settings import Settings
from localchat.tui.app import LocalchatApp
from localchat.tui.fake import ScriptedModel
from localchat.types import GenerationStats

FIXED_STATS = GenerationStats(
    prompt_tokens=12,
    completion_tokens=22,
    time_to_first_token_s=0.05,
    decode_tokens_per_s=250.0,
    total_s=0.1,
)


class FixedClock:
    """Timestamps that advance one minute per call, from a fixed start (snapshots)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01 00:00 UTC
        self.now = start

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


class Loads:
    """A loader that hands out ScriptedModels and remembers what was asked."""

    def __init__(self, **model_options: Any) -> None:
        self.model_options = model_options
        self.requests: list[str | None] = []
        self.models: list[ScriptedModel] = []
        self.error: BaseException | None = None
        self.gate: threading.Event | None = None  # set: each load waits for it (5 s at most)

    def __call__(self, model: str | None = None, **options: Any) -> ScriptedModel:
        self.requests.append(model)
        if self.gate is not None:
            self.gate.wait(5)
        if self.error is not None:
            raise self.error
        scripted = ScriptedModel(model or "scripted-model", **self.model_options)
        self.models.append(scripted)
        return scripted


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite3", clock=FixedClock())


@pytest.fixture
def make_app(tmp_path: Path, store: HistoryStore) -> Callable[..., LocalchatApp]:
    def make(
        *,
        model: str | None = "scripted-model",
        loads: Loads | None = None,
        settings: Settings | None = None,
        **model_options: Any,
    ) -> LocalchatApp:
        loader = loads or Loads(**model_options)
        app = LocalchatApp(
            model=model,
            loader=loader,
            store=store,
            settings=settings or Settings(),
            settings_path=tmp_path / "settings.toml",
        )
        app.loads = loader  # type: ignore[attr-defined]
        return app

    return make


async def wait_for(
    pilot: Any, condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.02
) -> None:
    """Pause the pilot until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(step)
    await asyncio.sleep(0)


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*[{" ": "space", "\n": "ctrl+j"}.get(c, c) for c in text])
