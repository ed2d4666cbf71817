"""Snapshots of the main screens: fixed size, scripted model, fixed stats and timestamps.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the report before committing the new SVGs.
"""

from __future__ import annotations

import pytest

from localchat.tui import services
from localchat.tui.screens import history as history_screen
from tests.tui.conftest import FIXED_STATS, wait_for
from tests.tui.test_screens import fake_rows, seed

SIZE = (100, 30)


def settle(*keys: str):
    """A run_before that waits for the model, presses keys, and hides notifications."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.model is not None)
        # The "Loaded" notice is posted, not shown at once: clear it once it is there, or it
        # lands on the chat screen afterwards and stays under a dialog (a clear only reaches
        # the screen on top).
        await wait_for(pilot, lambda: bool(app._notifications))
        app.clear_notifications()
        await pilot.pause(0.1)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await wait_for(pilot, lambda: not app.chat.generating)
        await pilot.pause(0.1)
        app.clear_notifications()
        await pilot.pause(0.1)

    return run_before


def test_chat_after_a_reply(snap_compare, make_app) -> None:
    app = make_app(fixed_stats=FIXED_STATS, tokens_per_s=0)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle(*"Hi there", "enter"))


def test_chat_empty(snap_compare, make_app) -> None:
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=settle())


def test_history(snap_compare, make_app, store, monkeypatch) -> None:
    monkeypatch.setattr(history_screen, "when", lambda ts: "2026-01-01 00:00")
    seed(store)
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=settle("f3"))


def test_models(snap_compare, make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app()

    async def run_before(pilot) -> None:
        await settle("f2")(pilot)
        await wait_for(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 3)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(110, 30), run_before=run_before)


def test_settings(snap_compare, make_app) -> None:
    app = make_app()
    assert snap_compare(app, terminal_size=(100, 44), run_before=settle("f4"))


def test_loaded_model_panel(snap_compare, make_app) -> None:
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=settle("f5"))


# The same screens in an 80×24 terminal (issue 9, item 18): nothing cut, nothing below the fold.
SMALL = (80, 24)


def test_small_chat_after_a_reply(snap_compare, make_app) -> None:
    app = make_app(fixed_stats=FIXED_STATS, tokens_per_s=0)
    assert snap_compare(app, terminal_size=SMALL, run_before=settle(*"Hi there", "enter"))


def test_small_history(snap_compare, make_app, store, monkeypatch) -> None:
    monkeypatch.setattr(history_screen, "when", lambda ts: "2026-01-01 00:00")
    seed(store)
    app = make_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=settle("f3"))


def test_small_models(snap_compare, make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app()

    async def run_before(pilot) -> None:
        await settle("f2")(pilot)
        await wait_for(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 3)
        await pilot.press("down")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def test_small_settings(snap_compare, make_app) -> None:
    app = make_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=settle("f4"))


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch) -> None:
    """Text cursors (the prompt, a focused field) must not blink mid-snapshot."""
    from textual.widgets import Input, TextArea

    monkeypatch.setattr(TextArea, "cursor_blink", False)
    monkeypatch.setattr(Input, "cursor_blink", False)
