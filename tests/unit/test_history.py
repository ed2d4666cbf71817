"""The SQLite history store: schema, messages, streaming recorder, search, export, crashes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import localchat.history
from localchat.history import SCHEMA_VERSION, HistoryError, HistoryStore, title_from
from localchat.types import GenerationStats, Message


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    with HistoryStore(tmp_path / "history.sqlite3", clock=Clock()) as s:
        yield s


def test_default_path_is_under_localchat_home(localchat_home: Path) -> None:
    with HistoryStore() as s:
        assert s.path == localchat_home / "data" / "history.sqlite3"
        assert s.path.exists()


def test_wal_mode_and_user_version(store: HistoryStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path) as s:
        cid = s.new_conversation("m")
    with HistoryStore(path) as s:
        assert s.conversation(cid) is not None


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    HistoryStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryStore(path)


def test_a_file_that_is_not_a_database_is_a_localchat_error(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(HistoryError, match="not a database") as caught:
        HistoryStore(path)
    assert "move the file aside" in caught.value.one_line()


def test_conversation_roundtrip_and_title_from_first_user_message(store: HistoryStore) -> None:
    cid = store.new_conversation("gemma-3-270m", system_prompt="Be brief.")
    store.add_message(cid, "user", "\n  What is a GGUF file?\nPlease explain.")
    mid = store.add_message(cid, "assistant", "A file format.", stats={"completion_tokens": 4})
    conv = store.conversation(cid)
    assert conv is not None
    assert conv.title == "What is a GGUF file?"
    assert conv.model == "gemma-3-270m"
    assert conv.system_prompt == "Be brief."
    assert conv.message_count == 2
    messages = store.messages(cid)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].id == mid
    assert messages[1].stats == {"completion_tokens": 4}
    assert messages[1].as_message() == Message("assistant", "A file format.")


def test_stats_may_be_a_dataclass(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    stats = GenerationStats(prompt_tokens=3, completion_tokens=5, decode_tokens_per_s=12.5)
    mid = store.add_message(cid, "assistant", "x", stats=stats)
    saved = store.message(mid)
    assert saved is not None and saved.stats is not None
    assert saved.stats["decode_tokens_per_s"] == 12.5


def test_bad_role_is_refused(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    with pytest.raises(ValueError):
        store.add_message(cid, "tool", "x")


def test_update_message_keeps_stats_unless_given(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    mid = store.add_message(cid, "assistant", "a", stats={"k": 1}, finished=False)
    store.update_message(mid, "ab", finished=True)
    saved = store.message(mid)
    assert saved is not None
    assert (saved.content, saved.finished, saved.stats) == ("ab", True, {"k": 1})


def test_latest_and_list_are_newest_first(store: HistoryStore) -> None:
    first = store.new_conversation("m", title="first")
    second = store.new_conversation("m", title="second")
    assert store.latest_conversation().id == second  # type: ignore[union-attr]
    store.add_message(first, "user", "bump")  # activity moves it to the top
    assert [c.id for c in store.list_conversations()] == [first, second]
    assert store.latest_conversation().id == first  # type: ignore[union-attr]
    assert len(store.list_conversations(limit=1)) == 1


def test_search_matches_titles_and_text_literally(store: HistoryStore) -> None:
    a = store.new_conversation("m", title="Rust lifetimes")
    b = store.new_conversation("m")
    store.add_message(b, "user", "what does 100% mean")
    store.new_conversation("m", title="other")
    assert [c.id for c in store.list_conversations("rust")] == [a]
    assert [c.id for c in store.list_conversations("100%")] == [b]
    assert store.list_conversations("1_0") == []
    assert len(store.list_conversations("  ")) == 3


def test_rename_delete_and_cascade(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    store.add_message(cid, "user", "hi")
    store.rename(cid, "Greeting")
    assert store.conversation(cid).title == "Greeting"  # type: ignore[union-attr]
    store.delete(cid)
    assert store.conversation(cid) is None
    assert store.messages(cid) == []


def test_delete_messages_from_truncates_the_tail(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    ids = [store.add_message(cid, role, str(i)) for i, role in enumerate(["user", "assistant"] * 2)]
    store.delete_messages_from(cid, ids[2])
    assert [m.content for m in store.messages(cid)] == ["0", "1"]
    store.delete_message(ids[1])
    assert [m.content for m in store.messages(cid)] == ["0"]


def test_recorder_streams_pieces_then_folds_them(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    recorder = store.recorder(cid)
    recorder.feed("Hel")
    recorder.feed("lo")
    live = store.messages(cid)[-1]
    assert (live.content, live.finished) == ("Hello", False)
    mid = recorder.finish({"finish_reason": "cancelled"})
    done = store.message(mid)  # type: ignore[arg-type]
    assert done is not None
    assert (done.content, done.finished, done.stats) == (
        "Hello",
        True,
        {"finish_reason": "cancelled"},
    )


def test_recorder_batches_with_an_interval(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    recorder = store.recorder(cid, flush_interval_s=3600)
    recorder.feed("a")
    recorder.feed("b")
    assert store.messages(cid) == []
    recorder.flush()
    assert store.messages(cid)[-1].content == "ab"
    recorder.finish(text="ab!")
    assert store.messages(cid)[-1].content == "ab!"


def test_empty_reply_leaves_no_row(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    assert store.recorder(cid).finish() is None
    assert store.messages(cid) == []


def test_recorder_context_manager_keeps_partial_on_error(store: HistoryStore) -> None:
    cid = store.new_conversation("m")
    with pytest.raises(RuntimeError), store.recorder(cid, flush_interval_s=3600) as recorder:
        recorder.feed("partial")
        raise RuntimeError("engine died")
    saved = store.messages(cid)[-1]
    assert (saved.content, saved.finished) == ("partial", False)


def test_export_markdown(store: HistoryStore) -> None:
    cid = store.new_conversation("gemma", system_prompt="Be kind.")
    store.add_message(cid, "user", "Hi")
    store.add_message(cid, "assistant", "Hello!", stats={"completion_tokens": 2})
    text = store.export_markdown(cid)
    assert text.startswith("# Hi\n")
    assert "- model: `gemma`" in text
    assert "## System\n\nBe kind." in text
    assert "## You\n\nHi" in text
    assert "## Assistant (2 tokens)\n\nHello!" in text
    with pytest.raises(KeyError):
        store.export_markdown(999)


def test_title_from() -> None:
    assert title_from("   \n") is None
    assert title_from("x" * 100).endswith("…")
    assert len(title_from("x" * 100) or "") == 60


WRITER = textwrap.dedent(
    """
    import sys, time
    from localchat.history import HistoryStore
    store = HistoryStore(__import__("pathlib").Path(sys.argv[1]))
    cid = store.new_conversation("m")
    store.add_message(cid, "user", "question")
    recorder = store.recorder(cid)
    i = 0
    while True:
        piece = f"p{i} "
        recorder.feed(piece)
        print(piece, flush=True)  # "shown" only after it was fed
        i += 1
        time.sleep(0.001)
    """
)


def test_kill_9_mid_stream_loses_nothing_shown(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    env = {**os.environ, "PYTHONPATH": str(Path(localchat.history.__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    shown = [proc.stdout.readline() for _ in range(200)]
    proc.kill()  # SIGKILL
    proc.wait()
    shown_text = "".join(line.rstrip("\n") for line in shown)
    with HistoryStore(path) as s:
        conv = s.latest_conversation()
        assert conv is not None
        user, reply = s.messages(conv.id)
    assert user.content == "question"
    assert not reply.finished
    assert reply.content.startswith(shown_text)


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path) as app, HistoryStore(path) as ask:
        cid = ask.new_conversation("m")
        recorder = ask.recorder(cid)
        recorder.feed("streaming")
        assert app.messages(cid)[-1].content == "streaming"
        app.rename(cid, "from the app")
        recorder.finish()
        assert ask.conversation(cid).title == "from the app"  # type: ignore[union-attr]
