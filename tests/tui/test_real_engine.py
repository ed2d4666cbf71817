"""One chat flow on the real engine: llama.cpp with the real gemma-3-270m GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.settings import Settings
from localchat.tui.app import LocalchatApp
from localchat.tui.services import open_model
from localchat.tui.widgets.message import MessageView
from localchat.tui.widgets.status import ContextMeter
from tests.tui.conftest import type_text, wait_for

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.asyncio]


@pytest.fixture
def real_app(gemma_path: Path, store, tmp_path: Path) -> LocalchatApp:
    pytest.importorskip("llama_cpp")
    return LocalchatApp(
        model=str(gemma_path),
        loader=open_model,
        store=store,
        settings=Settings(temperature=0.0, max_tokens=24, context_size=2048),
        settings_path=tmp_path / "settings.toml",
    )


async def test_chat_with_the_real_model(real_app: LocalchatApp, store) -> None:
    app = real_app
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None, timeout=120)
        assert app.model.n_ctx == 2048
        await type_text(pilot, "Name three colours.")
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: len(store.messages(app.session.conversation_id or 0)) == 2, 120
        )
        await wait_for(pilot, lambda: not app.chat.generating, timeout=120)
        views = list(app.screen.query(MessageView))
        assert [v.role for v in views] == ["user", "assistant"]
        reply = views[1].raw_text
        assert reply.strip()
        saved = store.messages(app.session.conversation_id)
        assert [m.content for m in saved] == ["Name three colours.", reply]
        assert 0 < saved[1].stats["completion_tokens"] <= 24
        # the reply's stats come from its stream; the model's last_stats agree with them
        assert saved[1].stats["completion_tokens"] == app.model.last_stats.completion_tokens
        assert saved[1].stats["finish_reason"] in ("stop", "length")
        assert "tok/s" in str(views[1].query_one(".stats").render())
        meter = app.screen.query_one(ContextMeter)
        assert meter.n_ctx == 2048
        assert meter.used == saved[1].stats["prompt_tokens"] + saved[1].stats["completion_tokens"]

        # regenerate keeps the model loaded and replaces the reply
        model = app.model
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.chat.replies_done == 2, timeout=120)
        messages = store.messages(app.session.conversation_id)
        assert [m.role for m in messages] == ["user", "assistant"] and messages[1].finished
        assert len(list(app.screen.query(MessageView))) == 2
        assert app.model is model
