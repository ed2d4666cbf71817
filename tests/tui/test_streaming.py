"""The app's engine-facing parts without Textual: buffer, generation loop, session, stats."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from localchat.errors import EngineError, TemplateRejected
from localchat.history import HistoryStore
from localchat.settings import Settings
from localchat.tui.fake import ScriptedModel, split_tokens
from localchat.tui.session import ChatSession
from localchat.tui.streaming import (
    Part,
    PartBuffer,
    count_context,
    format_stats,
    run_generation,
    split_reply,
)
from localchat.tui.widgets.message import code_blocks
from localchat.types import GenerationStats, Message, SamplingParams, TextStream


@pytest.fixture
def session(tmp_path: Path) -> ChatSession:
    return ChatSession(HistoryStore(tmp_path / "h.db"), Settings(system_prompt="Be brief."))


def test_part_buffer_wakes_once_and_coalesces() -> None:
    buffer = PartBuffer()
    assert buffer.push([Part("text", "a")]) is True
    assert buffer.push([Part("text", "b"), Part("thinking", "t")]) is False
    assert buffer.push([Part("text", "")]) is False
    assert buffer.drain() == [Part("text", "ab"), Part("thinking", "t")]
    assert buffer.drain() == []
    assert buffer.push([Part("text", "")]) is False


def test_split_tokens_round_trips() -> None:
    text = "a b\n\nc  d"
    assert "".join(split_tokens(text)) == text


def test_split_reply_without_parser() -> None:
    assert split_reply(None, "hi") == [Part("text", "hi")]
    assert split_reply(None, "") == []


def test_session_prompt_and_truncate(session: ChatSession) -> None:
    first = session.add_user("one", "m")
    session.store.add_message(session.conversation_id, "assistant", "1")
    session.reload()
    session.add_user("two", "m")
    assert session.engine_messages() == [
        Message("system", "Be brief."),
        Message("user", "one"),
        Message("assistant", "1"),
        Message("user", "two"),
    ]
    assert session.last_assistant() is None
    assert session.last_user().content == "two"  # type: ignore[union-attr]
    session.truncate_from(first.id + 1)
    assert [m.content for m in session.messages] == ["one"]
    assert session.title == "one"
    conversation = session.store.conversation(session.conversation_id)  # type: ignore[arg-type]
    assert conversation.system_prompt == "Be brief."  # type: ignore[union-attr]


def test_run_generation_records_and_reports(session: ChatSession) -> None:
    session.add_user("hello", "m")
    model = ScriptedModel(reply="a b c", tokens_per_s=0)
    emitted: list[Part] = []
    outcome = run_generation(
        model, session.engine_messages(), None, session.recorder(), emitted.extend, lambda: False
    )
    assert outcome.text == "a b c" and not outcome.cancelled and outcome.error is None
    assert "".join(p.text for p in emitted) == "a b c"
    saved = session.store.message(outcome.message_id)  # type: ignore[arg-type]
    assert saved is not None and saved.stats["completion_tokens"] == 3
    assert saved.stats["model"] == "scripted-model"


def test_run_generation_stops_when_cancelled(session: ChatSession) -> None:
    session.add_user("hello", "m")
    model = ScriptedModel(tokens=[f"{i} " for i in range(100)], tokens_per_s=0)
    stop = threading.Event()

    def emit(parts: list[Part]) -> None:
        if len(emitted) == 4:
            stop.set()
        emitted.extend(parts)

    emitted: list[Part] = []
    outcome = run_generation(model, [], None, session.recorder(), emit, stop.is_set)
    assert outcome.cancelled
    assert outcome.text == "0 1 2 3 4 "
    assert outcome.stats is not None and outcome.stats.finish_reason == "cancelled"


def test_run_generation_returns_errors(session: ChatSession) -> None:
    session.add_user("hello", "m")
    model = ScriptedModel(fail_with=EngineError("boom"), tokens_per_s=0)
    outcome = run_generation(model, [], None, session.recorder(), lambda p: None, lambda: False)
    assert isinstance(outcome.error, EngineError)
    assert outcome.message_id is None


def test_format_stats_and_count_context() -> None:
    assert format_stats(None) == ""
    text = format_stats(
        {
            "time_to_first_token_s": 0.123,
            "decode_tokens_per_s": 41.25,
            "completion_tokens": 7,
            "finish_reason": "length",
        }
    )
    assert text == (
        "TTFT 0.12 s · 41.2 tok/s · 7 tokens · ⚠ cut at the max-token limit (F4: Max tokens)"
    )
    assert "repeating itself" in format_stats({"finish_reason": "repetition"})
    model = ScriptedModel()
    assert count_context(model, [Message("user", "a b")]) > 0

    class Refusing(ScriptedModel):
        def render_prompt(self, messages):
            raise TemplateRejected("this template takes no system message")

    assert count_context(Refusing(), [Message("user", "a")]) == 0


def test_code_blocks() -> None:
    text = "a\n```py\nx = 1\n```\nb\n~~~\ny\n~~~\n"
    assert code_blocks(text) == ["x = 1", "y"]


def test_scripted_model_streams_a_text_stream() -> None:
    model = ScriptedModel(reply="a b c", tokens_per_s=0)
    stream = model.stream_chat([Message("user", "hi")])
    assert isinstance(stream, TextStream)
    assert model.last_stats is stream.stats  # like LoadedModel: last_stats is the latest's
    assert stream.stats.finish_reason == "cancelled"  # until the last piece went out
    assert list(stream) == ["a ", "b ", "c"]
    assert stream.stats.completion_tokens == 3 and stream.stats.finish_reason == "stop"

    stopped = model.stream_chat([Message("user", "hi")])
    assert next(stopped) == "a "
    stopped.close()
    assert list(stopped) == []
    assert stopped.stats.completion_tokens == 1 and stopped.stats.finish_reason == "cancelled"


def test_run_generation_reads_the_streams_own_stats(session: ChatSession) -> None:
    class StaleLastStats(ScriptedModel):
        """``last_stats`` names another generation: the reply's figures are the stream's."""

        def stream_chat(self, messages, sampling=None):
            stream = super().stream_chat(messages, sampling)
            self.last_stats = GenerationStats(completion_tokens=999)
            return stream

    session.add_user("hello", "m")
    model = StaleLastStats(tokens=[f"{i} " for i in range(10)], tokens_per_s=0)
    sampling = SamplingParams(max_tokens=4)
    outcome = run_generation(model, [], sampling, session.recorder(), lambda p: None, lambda: False)
    assert outcome.text == "0 1 2 3 "
    assert outcome.stats is not None
    assert outcome.stats.completion_tokens == 4 and outcome.stats.finish_reason == "length"
    saved = session.store.message(outcome.message_id or 0)
    assert saved is not None and saved.stats["finish_reason"] == "length"
