"""The app with a remote engine: llama-cpp-python's own server on 127.0.0.1 runs the real
gemma-3-270m; the app streams its answer and names the engine in the status bar."""

from __future__ import annotations

from functools import partial

import pytest
from textual.widgets import Label

from localchat.settings import Settings
from localchat.tui.app import LocalchatApp
from localchat.tui.services import open_model
from localchat.tui.widgets.message import MessageView
from tests.fixtures.servers import RunningServer
from tests.tui.conftest import type_text, wait_for

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.asyncio]


async def test_app_streams_from_a_remote_engine(
    llama_server: RunningServer, store, tmp_path
) -> None:
    url = f"{llama_server.base_url}/v1"
    app = LocalchatApp(
        model="gemma-270m",
        loader=partial(open_model, engine=url),
        store=store,
        settings=Settings(temperature=0.0, max_tokens=8),
        settings_path=tmp_path / "settings.toml",
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None, timeout=60)
        status = str(app.screen.query_one("#model-label", Label).render())
        assert "gemma-270m" in status and f"remote engine {url}" in status
        await type_text(pilot, "Write a poem about the sea.")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.replies_done == 1, timeout=120)
        views = list(app.screen.query(MessageView))
        assert [v.role for v in views] == ["user", "assistant"]
        assert views[1].raw_text.strip()
        saved = store.messages(app.session.conversation_id)
        assert 0 < saved[1].stats["completion_tokens"] <= 8
