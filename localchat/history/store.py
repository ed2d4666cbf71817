"""The conversation store: one SQLite file shared by ``localchat ask`` and the app.

WAL mode lets the app read while an ``ask`` process writes (and the other way round);
every write commits at once, so a crash or ``kill -9`` keeps everything written so far.
Replies still streaming are stored as append-only pieces (cheap to commit per token) and
folded into the message when it finishes.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localchat.errors import HistoryError
from localchat.history.export import conversation_markdown
from localchat.history.recorder import ReplyRecorder
from localchat.history.schema import migrate
from localchat.paths import history_db
from localchat.types import Message

TITLE_CHARS = 60
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str | None
    model: str
    system_prompt: str | None
    created_at: float
    updated_at: float
    message_count: int = 0

    @property
    def display_title(self) -> str:
        return self.title or "Untitled"


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    finished: bool = True
    stats: dict[str, Any] | None = None

    def as_message(self) -> Message:
        return Message(role=self.role, content=self.content)  # type: ignore[arg-type]


class HistoryStore:
    """Conversations and messages in SQLite.  Thread-safe; one connection per store."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else history_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._conn = _connect(self.path)
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise HistoryError(
                f"cannot use the history database {self.path}: {exc}",
                hint="move the file aside to start a fresh history",
            ) from exc

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ conversations
    def new_conversation(
        self, model: str, title: str | None = None, system_prompt: str | None = None
    ) -> int:
        now = self._clock()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (title, model, system_prompt, now, now),
            )
        return int(cursor.lastrowid or 0)

    def conversation(self, conversation_id: int) -> Conversation | None:
        rows = self._select_conversations("WHERE c.id = ?", (conversation_id,), limit=1)
        return rows[0] if rows else None

    def latest_conversation(self) -> Conversation | None:
        rows = self._select_conversations("", (), limit=1)
        return rows[0] if rows else None

    def list_conversations(self, search: str | None = None, limit: int = 200) -> list[Conversation]:
        """Newest first (by last activity).  ``search`` matches titles and message text."""
        if not search or not search.strip():
            return self._select_conversations("", (), limit=limit)
        pattern = "%" + _escape_like(search.strip()) + "%"
        where = (
            "WHERE c.title LIKE ? ESCAPE '\\' OR c.model LIKE ? ESCAPE '\\' OR EXISTS ("
            "SELECT 1 FROM messages s WHERE s.conversation_id = c.id"
            " AND s.content LIKE ? ESCAPE '\\')"
        )
        return self._select_conversations(where, (pattern, pattern, pattern), limit=limit)

    def rename(self, conversation_id: int, title: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?",
                (title.strip() or None, conversation_id),
            )

    def update_conversation(
        self,
        conversation_id: int,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> None:
        """Change the model or system prompt a conversation continues with."""
        with self._write() as conn:
            if model is not None:
                conn.execute(
                    "UPDATE conversations SET model = ? WHERE id = ?", (model, conversation_id)
                )
            if system_prompt is not None:
                conn.execute(
                    "UPDATE conversations SET system_prompt = ? WHERE id = ?",
                    (system_prompt or None, conversation_id),
                )

    def delete(self, conversation_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def _select_conversations(
        self, where: str, params: tuple[Any, ...], *, limit: int
    ) -> list[Conversation]:
        sql = (
            "SELECT c.id, c.title, c.model, c.system_prompt, c.created_at, c.updated_at,"
            " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
            f" FROM conversations c {where} ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [Conversation(*row) for row in rows]

    # ------------------------------------------------------------------ messages
    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        stats: dict[str, Any] | Any | None = None,
        finished: bool = True,
    ) -> int:
        """Save one message now (committed before this returns)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        now = self._clock()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, stats, finished, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, _stats_json(stats), int(finished), now),
            )
            self._touch(conn, conversation_id, now)
            if role == "user":
                conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title IS NULL",
                    (title_from(content), conversation_id),
                )
        return int(cursor.lastrowid or 0)

    def update_message(
        self,
        message_id: int,
        content: str,
        *,
        stats: dict[str, Any] | Any | None = None,
        finished: bool = True,
    ) -> None:
        """Replace a message's text (and stats, when given); drops its streamed pieces."""
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                "UPDATE messages SET content = ?, finished = ?, stats = COALESCE(?, stats)"
                " WHERE id = ?",
                (content, int(finished), _stats_json(stats), message_id),
            )
            conn.execute("DELETE FROM reply_pieces WHERE message_id = ?", (message_id,))
            self._touch_by_message(conn, message_id, now)

    def append_to_message(self, message_id: int, text: str) -> None:
        """Append streamed text to an unfinished message: one small committed row."""
        if not text:
            return
        with self._write() as conn:
            conn.execute(
                "INSERT INTO reply_pieces (message_id, seq, text) VALUES (?,"
                " (SELECT COALESCE(MAX(seq), 0) + 1 FROM reply_pieces WHERE message_id = ?), ?)",
                (message_id, message_id, text),
            )

    def message(self, message_id: int) -> StoredMessage | None:
        rows = self._select_messages("WHERE id = ?", (message_id,))
        return rows[0] if rows else None

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """All messages in order, with the text streamed so far for unfinished replies."""
        return self._select_messages("WHERE conversation_id = ?", (conversation_id,))

    def delete_message(self, message_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Delete this message and every later one (regenerate, edit and resend)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id),
            )

    def save_exchange(
        self, model: str, turns: Sequence[Message], reply: str, stats: Any = None
    ) -> int:
        """One finished request (a server's): its turns and the reply, as a new conversation."""
        system = next((t.content for t in turns if t.role == "system"), None)
        conversation_id = self.new_conversation(model, system_prompt=system)
        for turn in turns:
            if turn.role != "system":
                self.add_message(conversation_id, turn.role, turn.content)
        if reply:
            self.add_message(conversation_id, "assistant", reply, stats=stats)
        return conversation_id

    def recorder(self, conversation_id: int, *, flush_interval_s: float = 0.0) -> ReplyRecorder:
        return ReplyRecorder(self, conversation_id, flush_interval_s=flush_interval_s)

    def export_markdown(self, conversation_id: int) -> str:
        conversation = self.conversation(conversation_id)
        if conversation is None:
            raise KeyError(f"no conversation {conversation_id}")
        return conversation_markdown(conversation, self.messages(conversation_id))

    def _select_messages(self, where: str, params: tuple[Any, ...]) -> list[StoredMessage]:
        sql = (
            "SELECT id, conversation_id, role, content, created_at, finished, stats"
            f" FROM messages {where} ORDER BY id"
        )
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            pieces = {row[0]: self._pieces(row[0]) for row in rows if not row[5]}
        return [_message_from_row(row, pieces.get(row[0], "")) for row in rows]

    def _pieces(self, message_id: int) -> str:
        rows = self._conn.execute(
            "SELECT text FROM reply_pieces WHERE message_id = ? ORDER BY seq", (message_id,)
        ).fetchall()
        return "".join(row[0] for row in rows)

    @staticmethod
    def _touch(conn: sqlite3.Connection, conversation_id: int, now: float) -> None:
        conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))

    @staticmethod
    def _touch_by_message(conn: sqlite3.Connection, message_id: int, now: float) -> None:
        conn.execute(
            "UPDATE conversations SET updated_at = ?"
            " WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
            (now, message_id),
        )


def title_from(text: str) -> str | None:
    """A conversation title from its first user message: the first line, shortened."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return None
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _message_from_row(row: tuple[Any, ...], pieces: str) -> StoredMessage:
    msg_id, conv_id, role, content, created_at, finished, stats = row
    return StoredMessage(
        id=msg_id,
        conversation_id=conv_id,
        role=role,
        content=content + pieces,
        created_at=created_at,
        finished=bool(finished),
        stats=json.loads(stats) if stats else None,
    )


def _stats_json(stats: dict[str, Any] | Any | None) -> str | None:
    if stats is None:
        return None
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        stats = dataclasses.asdict(stats)
    return json.dumps(stats, sort_keys=True)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
