"""The conversation history shared by ``localchat ask`` and the app (SQLite, WAL mode)."""

from localchat.errors import HistoryError
from localchat.history.recorder import ReplyRecorder
from localchat.history.schema import SCHEMA_VERSION
from localchat.history.store import (
    Conversation,
    HistoryStore,
    StoredMessage,
    title_from,
)

__all__ = [
    "SCHEMA_VERSION",
    "Conversation",
    "HistoryError",
    "HistoryStore",
    "ReplyRecorder",
    "StoredMessage",
    "title_from",
]
