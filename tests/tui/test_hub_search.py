"""The Models screen's hub tab through Pilot, against the loopback fake hub (issue 20).

Search as you type, a verdict per repo that is the planner's (``localchat plan``'s) for
this machine, every quant's plan on Enter, ctrl+g pulling the chosen quant through the
existing pull path, a changed query cancelling the search under way, and a failing hub
as one notice on a screen that keeps working — at 80×24 too.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from localchat.paths import hf_cache_dir
from localchat.services import detect_hardware, plan_model
from localchat.services.search_verdict import verdict_from_plan
from localchat.tui import services
from localchat.tui.screens.hub_plan import HubPlanDialog
from localchat.tui.screens.models import ModelsScreen
from tests.conftest import unused_port
from tests.fixtures.fakehub import FakeHub, cache_files
from tests.fixtures.fakehub import fake_hub as fake_hub  # fixture
from tests.fixtures.hub_search_repos import populate
from tests.fixtures.hub_search_repos import search_files as search_files  # fixture
from tests.tui.conftest import type_text, wait_for
from tests.tui.test_screens import fake_rows
from tests.tui.test_small_terminal import footer_fits

pytestmark = pytest.mark.asyncio

PLANNED = (
    "acme/Llama-8B-Instruct-GGUF", "acme/Mixtral-8x7B-Llama-GGUF", "acme/Llama-70B-GGUF",
    "acme/Llama-8B-AWQ", "acme/Llama-Tiny-GGUF", "acme/Llama-3B-IQ-GGUF", "acme/Llama-1B-GGUF",
)  # fmt: skip


@pytest.fixture
def hub(fake_hub: FakeHub, search_files: dict[str, Any]) -> FakeHub:
    populate(fake_hub, search_files)
    return fake_hub


async def open_hub_tab(pilot: Any, query: str) -> Any:
    """F2 (Models), F2 again (the hub tab), type ``query``; returns the hub pane."""
    app = pilot.app
    await pilot.press("f2")
    assert isinstance(app.screen, ModelsScreen)
    await pilot.press("f2")
    assert app.screen.hub_active and app.focused is app.screen.hub.query_input
    await type_text(pilot, query)
    return app.screen.hub


async def all_planned(pilot: Any, pane: Any, count: int | None = None) -> None:
    def done() -> bool:
        rows = list(pane.rows.values())
        return bool(rows) and all(r.planned for r in rows) and count in (None, len(rows))

    await wait_for(pilot, done, timeout=60)


def cells(pane: Any, column: str) -> dict[str, str]:
    table: DataTable[str] = pane.table
    index = list(table.columns).index(column)
    return {str(key.value): str(table.get_row(key)[index]) for key in table.rows}


async def test_verdicts_are_the_plans_for_this_machine(make_app, hub: FakeHub) -> None:
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        pane = await open_hub_tab(pilot, "llama")
        await all_planned(pilot, pane, 11)
        shown = cells(pane, "verdict")
        assert "acme/Qwen2-0.5B-GGUF" not in shown
        hardware = detect_hardware()
        for repo in PLANNED:
            plan = plan_model(repo, hardware)
            assert shown[repo] == verdict_from_plan(plan).short, repo
            assert pane.rows[repo].pull_key == f"{repo}:{plan.quant}"
        assert shown["gated/Llama-Gated-GGUF"] == "gated: log in"
        assert "hf auth login" in pane.rows["gated/Llama-Gated-GGUF"].summary
        assert shown["evil/Llama-Hostile-GGUF"] == "refused"
        assert shown["acme/Llama-notes-GGUF"] == "no GGUF/AWQ files"
        assert all(".." not in key for key in shown)


async def test_enter_shows_every_quant_then_ctrl_g_pulls_it(make_app, hub: FakeHub) -> None:
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        pane = await open_hub_tab(pilot, "Tiny")
        await all_planned(pilot, pane, 1)
        await pilot.press("down")  # from the search box to the list
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HubPlanDialog))
        dialog = app.screen
        table = dialog.query_one(DataTable)
        assert table.row_count == 2
        marked = [str(table.get_row_at(i)[1]) for i in range(2) if table.get_row_at(i)[0] == "*"]
        chosen = pane.rows["acme/Llama-Tiny-GGUF"].pull_key.rsplit(":", 1)[1]
        assert marked == [chosen] and dialog.highlighted() == f"acme/Llama-Tiny-GGUF:{chosen}"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen))
        await wait_for(pilot, lambda: app.screen.pulling is None, timeout=60)
        assert any("is on disk" in n.message for n in app._notifications)
        pulled = cache_files(hf_cache_dir())
        assert any(name.startswith("Llama-Tiny-") for name in pulled), pulled
        await pilot.press("enter")  # the dialog again; Enter loads the highlighted quant
        await wait_for(pilot, lambda: isinstance(app.screen, HubPlanDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.model is not None)
        assert app.loads.requests == [f"acme/Llama-Tiny-GGUF:{chosen}"]


async def test_a_new_query_cancels_the_search_under_way(make_app, hub: FakeHub) -> None:
    hub.latency_s = 0.3  # the first search is still planning when the query changes
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        pane = await open_hub_tab(pilot, "llama")
        await wait_for(pilot, lambda: bool(pane.rows), timeout=30)
        first_cancel = pane._cancel
        assert not all(r.planned for r in pane.rows.values())
        await pilot.press(*["backspace"] * 5)
        await type_text(pilot, "qwen")
        await all_planned(pilot, pane, 1)
        assert first_cancel.is_set()
        assert list(pane.rows) == ["acme/Qwen2-0.5B-GGUF"]
        assert list(cells(pane, "verdict")) == ["acme/Qwen2-0.5B-GGUF"]


@pytest.mark.parametrize(
    "env, words",
    [
        ({"HF_ENDPOINT": f"http://127.0.0.1:{unused_port()}"}, "cannot reach"),
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
    ],
)
async def test_a_failing_hub_is_one_notice_and_the_catalog_still_works(
    make_app, monkeypatch, env: dict[str, str], words: str
) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = make_app(model=None)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_hub_tab(pilot, "llama")
        await wait_for(pilot, lambda: bool(app._notifications) and not pane.searching, 30)
        notices = [n.message for n in app._notifications]
        assert len(notices) == 1 and words in notices[0], notices
        assert "\n" not in notices[0] and not pane.rows
        await pilot.press("f2")  # back to the catalog, which works offline
        assert not app.screen.hub_active
        table = app.screen.query_one("#models-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.model is not None)
        assert app.loads.requests == ["tiny:Q4_K_M"]


async def test_the_hub_tab_fits_80x24(make_app, hub: FakeHub) -> None:
    app = make_app(model=None)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_hub_tab(pilot, "llama")
        await all_planned(pilot, pane, 11)
        await pilot.pause()
        table = pane.table
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert [str(c.label) for c in table.columns.values()] == [
            "Repo", "Params", "Downl.", "Verdict here"
        ]  # fmt: skip
        verdict = table.columns["verdict"]
        longest = max(len(v) for v in cells(pane, "verdict").values())
        assert verdict.get_render_width(table) - 2 >= longest
        screen = app.screen.region
        for widget in (table, pane.detail, pane.query_input):
            assert screen.contains_region(widget.region)
        assert not pane.detail.region.overlaps(table.region)
        await footer_fits(pilot)
        await pilot.press("down", "down", "enter")  # the MoE repo's quants
        await wait_for(pilot, lambda: isinstance(app.screen, HubPlanDialog))
        await pilot.pause()
        box = app.screen.query_one("#hub-plan-box")
        assert app.screen.region.contains_region(box.region)
        dialog_table = app.screen.query_one(DataTable)
        assert dialog_table.virtual_size.width <= dialog_table.scrollable_content_region.width
        await pilot.press("escape")
        assert isinstance(app.screen, ModelsScreen)


async def test_leaving_the_screen_stops_the_search(make_app, hub: FakeHub) -> None:
    hub.latency_s = 0.5
    app = make_app(model=None)
    async with app.run_test(size=(110, 30)) as pilot:
        pane = await open_hub_tab(pilot, "llama")
        await wait_for(pilot, lambda: pane.searching)
        cancel = pane._cancel
        await pilot.press("escape")  # back to the chat
        await wait_for(pilot, lambda: not isinstance(app.screen, ModelsScreen))
        assert cancel.is_set()
