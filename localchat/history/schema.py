"""The history database's schema, as numbered migrations tracked in ``PRAGMA user_version``.

Migration ``n`` (1-based) takes the database from version ``n - 1`` to ``n``.  Never edit
a migration that has shipped; append a new one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, messages, and the append-only pieces of replies still streaming.
    """
    CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY,
        title         TEXT,
        model         TEXT NOT NULL,
        system_prompt TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX conversations_updated ON conversations (updated_at DESC, id DESC);

    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content         TEXT NOT NULL DEFAULT '',
        stats           TEXT,
        finished        INTEGER NOT NULL DEFAULT 1,
        created_at      REAL NOT NULL
    );
    CREATE INDEX messages_conversation ON messages (conversation_id, id);

    CREATE TABLE reply_pieces (
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        text       TEXT NOT NULL,
        PRIMARY KEY (message_id, seq)
    ) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to ``SCHEMA_VERSION``; safe when two processes start at once."""
    if _version(conn) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    conn.execute("BEGIN IMMEDIATE")  # one process migrates; the other waits, then sees it done
    try:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"history database is version {version}, newer than this localchat"
                f" ({SCHEMA_VERSION})"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
