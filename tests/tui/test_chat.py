"""The chat screen driven through Pilot with a scripted model (timing under control)."""

from __future__ import annotations

import threading

import pytest

from localchat.errors import EngineError, ModelNotFound
from localchat.tui.screens.chat import ChatScreen
from localchat.tui.streaming import Part
from localchat.tui.widgets.message import MessageView
from localchat.tui.widgets.prompt import PromptInput
from localchat.tui.widgets.status import ContextMeter
from localchat.types import GenerationStats
from tests.tui.conftest import Loads, type_text, wait_for

pytestmark = pytest.mark.asyncio


def views(app) -> list[MessageView]:
    return list(app.screen.query(MessageView))


async def ask(pilot, text: str) -> None:
    await type_text(pilot, text)
    await pilot.press("enter")


async def test_send_streams_a_reply_and_saves_both_messages(make_app, store) -> None:
    app = make_app(tokens_per_s=500)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "What is GGUF?")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        user, reply = views(app)
        assert user.raw_text == "What is GGUF?"
        assert "print('hello from the scripted model')" in reply.raw_text
        assert "tok/s" in str(reply.query_one(".stats").render())
        saved = store.messages(app.session.conversation_id)
        assert [m.role for m in saved] == ["user", "assistant"]
        assert saved[1].content == reply.raw_text
        assert (
            saved[1].stats["completion_tokens"]
            == app.loads.models[0].last_stats.completion_tokens
            > 0
        )
        meter = app.screen.query_one(ContextMeter)
        assert meter.n_ctx == 4096 and meter.used > 0
        assert app.screen.query_one(PromptInput).text == ""


async def test_user_message_is_saved_before_the_first_token(make_app, store) -> None:
    app = make_app(first_token_delay_s=0.5)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "hi")
        await wait_for(pilot, lambda: app.chat.generating)
        conversation = store.latest_conversation()
        assert conversation is not None and conversation.title == "hi"
        assert [m.content for m in store.messages(conversation.id)] == ["hi"]
        await wait_for(pilot, lambda: not app.chat.generating)


async def test_escape_stops_at_once_and_keeps_the_partial_reply(make_app, store) -> None:
    app = make_app(tokens=[f"w{i} " for i in range(2000)], tokens_per_s=100)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "long story")
        await wait_for(
            pilot, lambda: len(views(app)) == 2 and views(app)[1].raw_text.count("w") > 5
        )
        await pilot.press("escape")
        # the scripted reply would take 20 s: ending well before that is the cancel
        await wait_for(pilot, lambda: not app.chat.generating, timeout=10)
        reply = views(app)[1]
        saved = store.messages(app.session.conversation_id)[-1]
        assert saved.content == reply.raw_text
        assert 5 < saved.content.count("w") < 2000
        assert saved.stats["finish_reason"] == "cancelled"
        assert "stopped" in str(reply.query_one(".stats").render())
        assert app.loads.models[0].calls  # the model stays loaded
        assert not app.loads.models[0].closed


async def test_regenerate_replaces_the_last_reply(make_app, store) -> None:
    replies = iter(["first answer", "second answer"])
    app = make_app(reply=lambda messages: next(replies))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "q")
        await wait_for(pilot, lambda: len(views(app)) == 2 and not app.chat.generating)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: views(app)[-1].raw_text == "second answer")
        await wait_for(pilot, lambda: not app.chat.generating)
        saved = store.messages(app.session.conversation_id)
        assert [m.content for m in saved] == ["q", "second answer"]
        assert len(views(app)) == 2
        model = app.loads.models[0]
        assert model.calls[1] == model.calls[0]  # same prompt, without the old reply


async def test_edit_and_resend_truncates_from_the_edited_message(make_app, store) -> None:
    app = make_app(reply=lambda messages: f"echo {messages[-1].content}")
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        for text in ("one", "two"):
            await ask(pilot, text)
            await wait_for(pilot, lambda: not app.chat.generating and views(app)[-1].raw_text)
        first_user = views(app)[0]
        first_user.focus()
        await pilot.press("e")
        prompt = app.screen.query_one(PromptInput)
        assert prompt.text == "one" and prompt.has_focus
        await pilot.press("backspace", "backspace", "backspace")
        await ask(pilot, "uno")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        await wait_for(pilot, lambda: views(app)[-1].raw_text == "echo uno")
        saved = store.messages(app.session.conversation_id)
        assert [m.content for m in saved] == ["uno", "echo uno"]


async def test_newline_keys_and_copy(make_app) -> None:
    app = make_app(reply="Try this:\n\n```sh\nls -la\n```\n")
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await type_text(pilot, "line one")
        await pilot.press("ctrl+j")
        await type_text(pilot, "two")
        assert app.screen.query_one(PromptInput).text == "line one\ntwo"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        assert views(app)[0].raw_text == "line one\ntwo"
        reply = views(app)[1]
        reply.focus()
        await pilot.press("c")
        assert app.clipboard == reply.raw_text
        await pilot.press("b")
        assert app.clipboard == "ls -la"
        app.action_copy_last_code()
        assert app.clipboard == "ls -la"


async def test_sending_without_a_model_loads_the_default_first(make_app) -> None:
    app = make_app(model=None)
    async with app.run_test() as pilot:
        await pilot.pause(0.1)
        assert app.model is None and app.loads.requests == []
        await ask(pilot, "hello")
        await wait_for(pilot, lambda: len(views(app)) == 2 and not app.chat.generating)
        assert app.loads.requests == [None]
        assert "hello" in views(app)[1].raw_text


async def test_load_failure_is_a_notification_with_a_hint(make_app) -> None:
    loads = Loads()
    loads.error = ModelNotFound("unknown model 'nope'", hint="see `localchat catalog`")
    app = make_app(model="nope", loads=loads)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: bool(app._notifications))
        texts = [n.message for n in app._notifications]
        assert any("unknown model 'nope' (see `localchat catalog`)" in t for t in texts)
        assert app.model is None
        assert isinstance(app.screen, ChatScreen)


async def test_engine_error_mid_reply_keeps_the_app_running(make_app, store) -> None:
    app = make_app(fail_with=EngineError("llama_decode failed", hint="try a smaller context"))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "hi")
        await wait_for(pilot, lambda: not app.chat.generating and bool(app._notifications))
        assert any("try a smaller context" in n.message for n in app._notifications)
        assert [m.role for m in store.messages(app.session.conversation_id)] == ["user"]
        assert len(views(app)) == 1


class TagParser:
    """A stand-in for the Reflection parser: <thinking>…</thinking> then the answer."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, piece: str) -> list[Part]:
        self.buffer += piece
        return []

    def finish(self) -> list[Part]:
        thinking, _, output = self.buffer.partition("</thinking>")
        return [Part("thinking", thinking.replace("<thinking>", "")), Part("output", output)]


async def test_reflection_thinking_is_folded(make_app, store) -> None:
    app = make_app(reply="<thinking>step one</thinking>The answer is 4.", parser_factory=TagParser)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "2+2")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        reply = views(app)[1]
        assert reply.raw_text == "The answer is 4."
        assert reply.thinking_text == "step one"
        from textual.widgets import Collapsible

        assert reply.query_one(Collapsible).collapsed
        saved = store.messages(app.session.conversation_id)[-1]
        assert saved.content.startswith("<thinking>")  # stored raw, parsed on display


async def test_new_chat_and_stats_override(make_app) -> None:
    stats = GenerationStats(prompt_tokens=3, completion_tokens=2, decode_tokens_per_s=9.0)
    app = make_app(fixed_stats=stats)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "x")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        assert "9.0 tok/s · 2 tokens" in str(views(app)[1].query_one(".stats").render())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert views(app) == [] and app.session.conversation_id is None


async def test_quitting_mid_reply_saves_the_partial_reply(make_app, store) -> None:
    app = make_app(tokens=[f"w{i} " for i in range(5000)], tokens_per_s=200)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "go on")
        await wait_for(
            pilot, lambda: len(views(app)) == 2 and views(app)[1].raw_text.count("w") > 3
        )
        conversation_id = app.session.conversation_id
        await pilot.press("ctrl+q")
    model = app.loads.models[0]
    assert model.closed
    saved = store.messages(conversation_id)[-1]
    assert saved.role == "assistant" and saved.finished
    assert saved.stats["finish_reason"] == "cancelled"
    assert 3 < saved.content.count("w") < 5000


async def test_real_reflection_parser_folds_thinking_and_reflection(make_app) -> None:
    from localchat.formats import reflection

    reply = (
        "<thinking>Add the numbers.<reflection>Check: 2+2 is 4.</reflection></thinking>"
        "<output>It is **4**.</output>"
    )
    app = make_app(
        tokens=[reply[i : i + 3] for i in range(0, len(reply), 3)],  # tags split mid-way
        parser_factory=reflection.ReflectionParser,
    )
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        await ask(pilot, "2+2?")
        await wait_for(pilot, lambda: not app.chat.generating and len(views(app)) == 2)
        view = views(app)[1]
        assert view.raw_text.strip() == "It is **4**."
        assert "Add the numbers." in view.thinking_text
        assert "Check: 2+2 is 4." in view.thinking_text
        assert "<" not in view.raw_text


async def test_a_message_sent_while_the_model_loads_waits_for_that_load(make_app) -> None:
    loads = Loads()
    loads.gate = threading.Event()
    app = make_app(model="slow-model", loads=loads)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: loads.requests == ["slow-model"])
        await ask(pilot, "are you there?")
        await pilot.pause(0.1)
        assert app.model is None and len(views(app)) == 1
        loads.gate.set()
        await wait_for(pilot, lambda: app.chat.replies_done == 1)
        assert loads.requests == ["slow-model"]  # one load: the message did not start another
        assert "are you there?" in views(app)[1].raw_text
        assert app.loads.models[0].calls[0][-1].content == "are you there?"
