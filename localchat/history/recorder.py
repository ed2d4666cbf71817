"""Save a reply while it streams, so a crash or kill mid-reply loses nothing shown."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localchat.history.store import HistoryStore


class ReplyRecorder:
    """Records one assistant reply as it streams.

    Call ``feed(piece)`` *before* showing each piece and ``finish(stats)`` at the end
    (also after a cancel; the partial text is kept).  With ``flush_interval_s=0`` (the
    default) every piece is committed at once — one small row insert, a few tens of
    microseconds — so whatever was shown is on disk.  A larger interval batches pieces;
    call ``flush()`` before showing text to keep the guarantee.

    The assistant message is created with the first text, so an empty reply leaves no row.
    """

    def __init__(
        self, store: HistoryStore, conversation_id: int, *, flush_interval_s: float = 0.0
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.flush_interval_s = flush_interval_s
        self.message_id: int | None = None
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self.finished = False

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._parts)

    def feed(self, piece: str) -> None:
        if not piece:
            return
        self._parts.append(piece)
        self._pending.append(piece)
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Commit the pieces fed since the last flush."""
        if not self._pending or self.finished:
            return
        chunk = "".join(self._pending)
        self._pending.clear()
        self._last_flush = time.monotonic()
        if self.message_id is None:
            self.message_id = self.store.add_message(
                self.conversation_id, "assistant", "", finished=False
            )
        self.store.append_to_message(self.message_id, chunk)

    def finish(
        self, stats: dict[str, Any] | Any | None = None, *, text: str | None = None
    ) -> int | None:
        """Write the whole reply (``text`` overrides what was fed) and its stats.

        Returns the message id, or None when the reply was empty.
        """
        if self.finished:
            return self.message_id
        self.finished = True
        final = self.text if text is None else text
        self._pending.clear()
        if self.message_id is None:
            if not final:
                return None
            self.message_id = self.store.add_message(
                self.conversation_id, "assistant", final, stats=stats
            )
            return self.message_id
        self.store.update_message(self.message_id, final, stats=stats, finished=True)
        return self.message_id

    def __enter__(self) -> ReplyRecorder:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        """On an exception keep what streamed (unfinished); on success finish without stats."""
        if exc_type is None:
            self.finish()
        else:
            self.flush()
