"""Stop a reply that has started looping, whatever backend or chat format produced it.

Small and base models fall into loops ("The answer is C. The answer is C. ...") and
would otherwise run until the context is full.  ``RepetitionGuard`` watches the text
as it streams and trips when its tail is one unit repeated back to back: at least
``MIN_REPEATS`` copies covering at least ``MIN_SPAN_CHARS`` characters.  Legitimate
text rarely does that (a long ``=====`` rule needs 160 characters of it).
``guard_stream`` applies it to any backend's stream and marks the stats
``finish_reason = "repetition"``.
"""

from __future__ import annotations

from collections.abc import Iterator

from localchat.types import TextStream

MIN_REPEATS = 4
MIN_SPAN_CHARS = 160
MAX_UNIT_CHARS = 400
CHECK_EVERY_CHARS = 16  # checked every few tokens, not every one
_WINDOW_CHARS = MAX_UNIT_CHARS * MIN_REPEATS
_KEY_CHARS = 8
_MAX_CANDIDATES = 32


class RepetitionGuard:
    """Feed text pieces; ``feed`` returns True once the tail is a loop."""

    def __init__(self) -> None:
        self._tail = ""
        self._unchecked = 0

    def feed(self, piece: str) -> bool:
        self._tail = (self._tail + piece)[-_WINDOW_CHARS:]
        self._unchecked += len(piece)
        if self._unchecked < CHECK_EVERY_CHARS:
            return False
        self._unchecked = 0
        return is_looping(self._tail)


def is_looping(text: str) -> bool:
    """Whether ``text`` ends in one unit repeated back to back, at least ``MIN_REPEATS``
    times and ``MIN_SPAN_CHARS`` characters.

    Candidate unit lengths are the distances back to earlier copies of the last
    ``_KEY_CHARS`` characters (a loop of period p repeats them p characters back), found
    with ``str.rfind``; each candidate costs one slice comparison.
    """
    if len(text) < MIN_SPAN_CHARS:
        return False
    key = text[-_KEY_CHARS:]
    key_at = len(text) - len(key)
    search_to = len(text) - 1  # an earlier copy starts at key_at - 1 or before
    for _ in range(_MAX_CANDIDATES):
        found = text.rfind(key, 0, search_to)
        unit = key_at - found
        if found < 0 or unit > MAX_UNIT_CHARS:
            return False
        span = max(unit * MIN_REPEATS, MIN_SPAN_CHARS)
        if span > len(text):
            return False
        tail = text[-span:]
        if tail[unit:] == tail[:-unit]:  # periodic with period ``unit``
            return True
        search_to = found + len(key) - 1
    return False


def guard_stream(stream: TextStream) -> TextStream:
    """``stream`` until it loops; then stop it and mark its stats as ended by repetition.

    Closing the returned stream closes ``stream`` (that is how a caller stops generating).
    """
    return TextStream(_guarded(stream), stream.stats)


def _guarded(stream: TextStream) -> Iterator[str]:
    guard = RepetitionGuard()
    try:
        for piece in stream:
            yield piece
            if guard.feed(piece):
                stream.close()
                stream.stats.finish_reason = "repetition"
                return
    finally:
        stream.close()
