"""History, settings, models and loaded-model screens, through Pilot."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from localchat.errors import DownloadFailed
from localchat.hub.progress import PullProgress
from localchat.settings import Settings
from localchat.tui import services
from localchat.tui.screens.history import HistoryScreen
from localchat.tui.screens.loaded import LoadedModelScreen, loaded_rows
from localchat.tui.screens.models import ModelsScreen
from localchat.tui.screens.settings import SettingsScreen
from localchat.tui.services import Fit, ModelRow
from localchat.tui.widgets.message import MessageView
from tests.tui.conftest import type_text, wait_for

pytestmark = pytest.mark.asyncio


def seed(store) -> list[int]:
    """Three conversations; the last one created is the newest."""
    ids = []
    for title, reply in (("Rust lifetimes", "borrow"), ("GGUF files", "tensors"), ("Tea", "hot")):
        cid = store.new_conversation("gemma-3-270m")
        store.add_message(cid, "user", title)
        store.add_message(cid, "assistant", reply, stats={"completion_tokens": 1})
        ids.append(cid)
    return ids


def table_titles(app) -> list[str]:
    table = app.screen.query_one(DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_history_lists_newest_first_searches_and_reopens(make_app, store) -> None:
    ids = seed(store)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await pilot.press("f3")
        assert isinstance(app.screen, HistoryScreen)
        assert table_titles(app) == ["Tea", "GGUF files", "Rust lifetimes"]
        await pilot.press("ctrl+f")
        await type_text(pilot, "tensor")
        assert table_titles(app) == ["GGUF files"]
        await pilot.press("enter")  # search -> table
        await pilot.press("enter")  # open
        await wait_for(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        assert app.session.conversation_id == ids[1]
        texts = [v.raw_text for v in app.screen.query(MessageView)]
        assert texts == ["GGUF files", "tensors"]
        await type_text(pilot, "more")  # continue the conversation
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.chat.generating and len(store.messages(ids[1])) == 4)
        assert app.loads.models[0].calls[-1][0].content == "GGUF files"


async def test_history_rename_delete_export(make_app, store, localchat_home: Path) -> None:
    ids = seed(store)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await pilot.press("ctrl+e")
        await wait_for(pilot, lambda: bool(app.screen.query("#dialog-input")))
        dialog_input = app.screen.query_one("#dialog-input", Input)
        dialog_input.value = "Cups of tea"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.pause()
        assert store.conversation(ids[2]).title == "Cups of tea"
        assert table_titles(app)[0] == "Cups of tea"
        await pilot.press("ctrl+x")
        exported = localchat_home / "data" / "exports" / f"chat-{ids[2]}.md"
        assert exported.read_text().startswith("# Cups of tea")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.pause()
        assert store.conversation(ids[2]) is None
        assert table_titles(app) == ["GGUF files", "Rust lifetimes"]


async def test_history_empty_state(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("f3")
        assert "No conversations yet" in str(app.screen.query_one("#history-empty").render())


async def test_settings_are_saved_and_applied(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("f4")
        assert isinstance(app.screen, SettingsScreen)
        screen = app.screen
        screen.query_one("#default_model", Input).value = "gemma-3-270m"
        screen.query_one("#temperature", Input).value = "0.2"
        screen.query_one("#max_tokens", Input).value = "64"
        screen.query_one("#system_prompt").text = "Answer in French."
        screen.query_one("#theme").value = "nord"
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = tomllib.loads((tmp_path / "settings.toml").read_text())
        assert saved["default_model"] == "gemma-3-270m"
        assert saved["temperature"] == 0.2 and saved["max_tokens"] == 64
        assert saved["theme"] == "nord" and app.theme == "nord"
        assert app.session.system_prompt == "Answer in French."
        sampling = app.session.sampling_for(app.model.default_sampling())
        assert sampling.temperature == 0.2 and sampling.max_tokens == 64


async def test_settings_reject_bad_numbers(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("f4")
        app.screen.query_one("#top_p", Input).value = "7"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not (tmp_path / "settings.toml").exists()
        assert any("top_p" in n.message for n in app._notifications)
        assert app.settings == Settings()


def fake_rows() -> list[ModelRow]:
    return [
        ModelRow("tiny:Q4_K_M", "tiny", "Q4_K_M", 253_000_000, "a tiny model", True, Fit("CPU only")),
        ModelRow("big:Q4_K_M", "big", "Q4_K_M", 42_500_000_000, "a big one", False,
                 Fit("does not fit", "needs 45 GB; this machine has 24 GB")),
        ModelRow("mid:Q8_0", "mid", "Q8_0", 8_000_000_000, "middle", False, Fit("partial 20/33")),
    ]  # fmt: skip


async def test_models_lists_fit_and_loads(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, ModelsScreen)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        assert [str(table.get_row_at(i)[3]) for i in range(3)] == [
            "CPU only",
            "does not fit",
            "partial 20/33",
        ]
        await pilot.press("down")
        detail = str(app.screen.query_one("#model-detail").render())
        assert "needs 45 GB" in detail
        await pilot.press("up", "enter")
        await wait_for(pilot, lambda: app.model is not None)
        assert app.loads.requests == ["tiny:Q4_K_M"]


async def test_models_filter(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("ctrl+f")
        await type_text(pilot, "Q8")
        assert table.row_count == 1


def progress_event(done: int) -> PullProgress:
    return PullProgress(
        file="m.gguf",
        stage="download",
        bytes_done=done,
        bytes_total=1000,
        speed_bytes_per_s=100.0,
        eta_s=(1000 - done) / 100,
        overall_bytes_done=done,
        overall_bytes_total=1000,
    )


async def test_models_pull_progress_and_cancel(make_app, monkeypatch) -> None:
    import threading

    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    release = threading.Event()
    pulled: list[str] = []

    def fake_pull(key, progress):
        progress(progress_event(300))
        release.wait(5)
        progress(progress_event(600))  # raises PullCancelled once Esc was pressed
        pulled.append(key)

    monkeypatch.setattr(services, "pull", fake_pull)
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("down", "ctrl+g")
        label = app.screen.query_one("#pull-label")
        await wait_for(pilot, lambda: "300 B / 1.0 kB" in str(label.render()))
        assert "ETA 00:07" in str(label.render())
        await pilot.press("escape")
        release.set()
        await wait_for(pilot, lambda: app.screen.pulling is None)
        assert pulled == []
        assert any("cancelled" in n.message for n in app._notifications)
        assert isinstance(app.screen, ModelsScreen)


async def test_models_pull_failure_is_a_notification(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)

    def failing_pull(key, progress):
        raise DownloadFailed("hub unreachable", hint="check your network, then pull again")

    monkeypatch.setattr(services, "pull", failing_pull)
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: bool(app._notifications))
        assert any("check your network" in n.message for n in app._notifications)


async def test_loaded_model_panel(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await pilot.press("f5")
        assert isinstance(app.screen, LoadedModelScreen)
        table = app.screen.query_one(DataTable)
        fields = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert fields[:6] == ["model", "quant", "engine", "file", "context", "layers on GPU"]
        await pilot.press("u")
        await pilot.pause()
        assert app.model is None and app.loads.models[0].closed


async def test_loaded_rows_without_a_model() -> None:
    assert loaded_rows(None) == [("model", "none loaded (F2 to pick one)")]


async def test_command_palette_lists_our_commands(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("New chat", "Models", "History", "Settings", "Copy last reply"):
            assert wanted in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


async def test_deleting_the_open_conversation_starts_a_new_chat(make_app, store) -> None:
    ids = seed(store)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await pilot.press("f3", "enter")  # the newest: "Tea"
        await wait_for(pilot, lambda: app.session.conversation_id == ids[2])
        assert [v.raw_text for v in app.screen.query(MessageView)] == ["Tea", "hot"]
        await pilot.press("f3", "ctrl+d")
        await wait_for(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.session.conversation_id is None)
        assert store.conversation(ids[2]) is None
        assert not app.chat.query(MessageView)


async def test_models_keeps_the_screen_when_a_reply_is_running(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(tokens=[f"w{i} " for i in range(2000)], tokens_per_s=100)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await type_text(pilot, "long story")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.generating)
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: any("Stop the reply" in n.message for n in app._notifications)
        )
        assert isinstance(app.screen, ModelsScreen)
        assert app.loads.requests == ["scripted-model"]
        await pilot.press("escape")  # back to the chat, where Esc stops the reply
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.chat.generating)
