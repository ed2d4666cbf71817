"""The app in an 80×24 terminal (issue 9, item 18): everything reachable, nothing cut.

Each test drives the real app through Pilot at 80×24 with the scripted model and asserts
what a user at that size sees: regions inside the screen, the focused widget, the row
opened, where notices appear.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from textual import events
from textual.geometry import Region
from textual.widgets import DataTable, Footer, Input, TextArea
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from localchat.errors import DownloadFailed
from localchat.settings import Settings
from localchat.tui import services
from localchat.tui.screens.chat import ChatScreen
from localchat.tui.screens.models import ModelsScreen
from localchat.tui.screens.settings import SettingsScreen
from localchat.tui.widgets.message import MessageView
from tests.tui.conftest import type_text, wait_for
from tests.tui.test_screens import fake_rows, seed

pytestmark = pytest.mark.asyncio

SMALL = (80, 24)


async def footer_fits(pilot) -> None:
    """Every key in the footer lies inside the screen and clear of the palette key.

    The footer rebuilds itself whenever the keys change (focus, a model loaded), and is
    empty for a moment while it does: the check runs on one consistent view of it, retried
    until the footer has keys, and its failure names the key that does not fit."""
    app = pilot.app
    with contextlib.suppress(AssertionError):
        await wait_for(pilot, lambda: not _footer_problems(app))
    assert _footer_problems(app) == []


def _footer_problems(app) -> list[str]:
    keys = list(app.screen.query_one(Footer).query(FooterKey))
    if not keys:
        return ["the footer shows no keys"]
    palette = [k for k in keys if k.description == "palette"]
    limit = palette[0].region.x if palette else app.screen.region.right
    problems = [
        f"{key.description} lies outside the screen"
        for key in keys
        if not app.screen.region.contains_region(key.region)
    ]
    problems += [
        f"{key.description} runs under the palette key"
        for key in keys
        if key not in palette and key.region.right > limit
    ]
    return problems


async def test_models_every_column_is_visible(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(model=None)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.pause()
        # No horizontal scrolling: all five columns fit the table's width, in full.
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert [str(c.label) for c in table.columns.values()] == [
            "Model",
            "Quant",
            "Size",
            "Fit",
            "On disk",
        ]
        fit = table.columns["fit"]
        assert fit.get_render_width(table) - 2 >= len("does not fit")
        assert app.screen.region.contains_region(table.region)
        detail = app.screen.query_one("#model-detail")
        assert app.screen.region.contains_region(detail.region)
        assert not detail.region.overlaps(table.region)
        await footer_fits(pilot)


async def test_models_typing_reaches_the_filter_and_enter_loads_the_highlight(
    make_app, monkeypatch
) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(model=None)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        assert app.focused is table
        await type_text(pilot, "q")  # typed on the list: it lands in the filter
        filter_input = app.screen.query_one("#filter", Input)
        assert app.focused is filter_input and filter_input.value == "q"
        assert table.row_count == 3  # every quant name has a Q
        await pilot.press("down")  # the arrows still move the list from the filter
        assert app.screen.selected().key == "big:Q4_K_M"
        await type_text(pilot, "4")  # the highlight stays on the same model as rows go
        assert table.row_count == 2 and app.screen.selected().key == "big:Q4_K_M"
        await pilot.press("backspace", "backspace")
        assert table.row_count == 3 and app.screen.selected().key == "big:Q4_K_M"
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.model is not None)
        assert app.loads.requests == ["mid:Q8_0"]
        assert isinstance(app.screen, ChatScreen)


async def test_keys_and_a_paste_on_the_list_all_reach_the_filter(make_app, monkeypatch) -> None:
    """Typed fast, keys land whole (the filter does not select its text on focus and eat
    them), and a paste on the list (some terminals deliver a burst of keys so) lands too."""
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app(model=None)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        filter_input = app.screen.query_one("#filter", Input)
        await pilot.press(*"mi")  # no pause between the keys
        await pilot.pause()
        assert filter_input.value == "mi"
        filter_input.value = ""
        table.focus()
        await pilot.pause()
        table.post_message(events.Paste("mid\nignored"))
        await pilot.pause()
        assert app.focused is filter_input and filter_input.value == "mid"


async def test_settings_fit_and_typing_goes_to_the_first_field(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f4")
        assert isinstance(app.screen, SettingsScreen)
        await pilot.pause()
        assert app.focused is app.screen.query_one("#default_model", Input)
        form = app.screen.query_one("#settings-form")
        for selector in ("#theme", "#system_prompt", "#context_size", "#rpc"):
            widget = app.screen.query_one(selector)
            assert form.region.contains_region(widget.region), f"{selector} is below the fold"
        for selector in ("#save", "#back"):
            assert app.screen.region.contains_region(app.screen.query_one(selector).region)
        await footer_fits(pilot)
        await type_text(pilot, "gemma-3-270m")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.settings.default_model == "gemma-3-270m"
        assert (tmp_path / "settings.toml").read_text().count("gemma-3-270m") == 1


async def test_settings_keep_what_the_form_does_not_show(make_app) -> None:
    app = make_app(settings=Settings(repetition_guard=False, threads=3, extra={"future": 1}))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert app.screen.query_one("#threads", Input).value == "3"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.settings.repetition_guard is False and app.settings.threads == 3
        assert app.settings.extra == {"future": 1}


async def test_footers_fit_on_every_screen(make_app, store) -> None:
    seed(store)
    app = make_app(tokens_per_s=20)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await footer_fits(pilot)  # chat, prompt focused
        await type_text(pilot, "Hi there")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.generating)
        await footer_fits(pilot)  # while a reply streams (Stop shows)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.chat.generating)
        app.screen.query(MessageView).last().focus()
        await pilot.pause()
        await footer_fits(pilot)  # a reply focused: its own keys show
        for key in ("f2", "f3", "f4"):
            await pilot.press(key)
            await pilot.pause()
            await footer_fits(pilot)


async def test_escape_closes_the_keys_panel_first(make_app, monkeypatch) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f2")
        app.action_show_help_panel()
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")
        assert isinstance(app.screen, ModelsScreen)  # Esc did only that
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)


def toasts(app) -> list[Toast]:
    """The notices on screen (a replaced one may linger a moment, hidden)."""
    return [toast for toast in app.screen.query(Toast) if toast.region]


async def test_notices_are_one_line_over_the_title_and_stay_on_their_page(
    make_app, monkeypatch
) -> None:
    monkeypatch.setattr(services, "catalog_rows", fake_rows)
    app = make_app()
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await pilot.press("f2")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        app.notify("first notice")
        app.notify("a second, much longer notice " + "that goes on and on " * 6)
        await wait_for(pilot, lambda: "second" in " ".join(str(t.render()) for t in toasts(app)))
        await pilot.pause()
        assert len(toasts(app)) == 1 and len(app._notifications) == 1  # it replaced the first
        toast = toasts(app)[0]
        assert toast.region.y == 0 and toast.region.height == 1  # the title row only
        assert app.screen.region.contains_region(toast.region)
        for content in ("#filter", "#models-table", "#model-detail"):
            assert not toast.region.overlaps(app.screen.query_one(content).region), content
        await pilot.press("escape")  # another page: the notice stays behind
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)
        assert toasts(app) == [] and not app._notifications
        await pilot.press("f5")  # a dialog over a page keeps the page's notice
        app.notify("about the model")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["about the model"]


async def test_history_enter_opens_the_highlighted_row(make_app, store) -> None:
    ids = seed(store)  # listed newest first: Tea, GGUF files, Rust lifetimes
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await pilot.press("f3")
        table = app.screen.query_one(DataTable)
        assert app.focused is table
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no column cut
        await footer_fits(pilot)
        await pilot.press("down", "down")
        assert app.screen.selected_id() == ids[0]
        app.screen.refresh_list()  # a refresh (rename, export...) keeps the highlight on it
        assert app.screen.selected_id() == ids[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        assert app.session.conversation_id == ids[0]
        # From the search box, Enter opens the highlighted match too.
        await pilot.press("f3")
        await type_text(pilot, "t")  # typed on the list, it goes to the search
        assert app.focused is app.screen.query_one("#search", Input)
        assert app.screen.query_one(DataTable).row_count == 3  # "Tea", "tensors", "lifetimes"
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        assert app.session.conversation_id == ids[1]  # the second row: "GGUF files"


async def test_history_highlight_is_visible_with_or_without_focus(make_app, store) -> None:
    seed(store)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f3")
        table = app.screen.query_one(DataTable)
        await pilot.pause()
        for focused in (True, False):
            if not focused:
                app.screen.query_one("#search", Input).focus()
                await pilot.pause()
            cursor = table.get_component_styles("datatable--cursor").background
            background = table.background_colors[1]
            for stripe in ("datatable--even-row", "datatable--odd-row"):
                row = background + table.get_component_styles(stripe).background
                highlight = background + cursor
                # Textual's default blurred cursor differs by 0.07-0.10: too faint to find.
                assert abs(highlight.brightness - row.brightness) > 0.15, (focused, stripe)


async def test_errors_go_to_the_log_and_one_line(make_app, localchat_home: Path) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        try:
            raise RuntimeError("a bug\nwith two lines")
        except RuntimeError as exc:
            app.report_error(exc, doing="testing")
        app.report_error(DownloadFailed("hub unreachable", hint="retry"), doing="pulling")
        await pilot.pause()
        log = (localchat_home / "logs" / "errors.log").read_text()
        assert "Traceback" in log and "RuntimeError: a bug" in log and "while testing" in log
        assert "DownloadFailed" in log
        [notice] = app._notifications
        assert "\n" not in notice.message and notice.message.startswith("Error pulling:")


async def test_a_reply_cut_by_the_token_limit_says_so(make_app) -> None:
    app = make_app(settings=Settings(max_tokens=3), tokens_per_s=0)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await type_text(pilot, "Hi")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.replies_done == 1)
        reply = app.screen.query(MessageView).last()
        stats = str(reply.query_one(".stats").render())
        assert "max-token limit" in stats and "3 tokens" in stats
        assert app.screen.region.contains_region(reply.query_one(".stats").region)


async def test_prompt_stays_usable_at_80x24(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        prompt = app.screen.query_one("#prompt", TextArea)
        assert app.focused is prompt
        for selector in ("#prompt", "#status"):
            region: Region = app.screen.query_one(selector).region
            assert app.screen.region.contains_region(region)
        state = "replying… (Esc to stop)"  # the engine's state is readable in full
        app.chat.set_state(state)
        await pilot.pause()
        label = app.screen.query_one("#state-label")
        assert label.region.width >= len(state) and str(label.render()) == state
