"""Streaming call parsers: text until a call marker, then a call block, whatever the
chunk boundaries.

``MarkerParser`` serves every native syntax: a block starts at one of its markers (or, for
Llama 3.x, at a ``{`` that opens the reply) and ends at an end marker or where its JSON
value closes.  Text that may be the start of a marker is held back until it is certain.
Whitespace between text and a call, and after the calls, is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from localchat.formats.tools.base import ToolEvent
from localchat.types import ToolCall

# A call block's text -> the calls in it, or None when it is not a valid call.
BlockDecoder = Callable[[str], list[ToolCall] | None]


class JsonEnd:
    """Finds where one JSON object or array ends in text fed piece by piece."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escaped = False
        self.invalid = False

    def feed(self, text: str) -> int | None:
        """The index in ``text`` just past the value's end, or None while it is open."""
        for index, ch in enumerate(text):
            if self.invalid:
                return None
            if not self.started:
                if ch.isspace():
                    continue
                self.started = True
                self.invalid = ch not in "{["
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    return index + 1
        return None


class MarkerParser:
    """Text and calls from a reply in a marker-based call syntax.

    ``markers`` open a call block; ``end_marker`` closes one (else its JSON value does);
    ``leading_json``: a reply whose first non-blank character is ``{`` is a call block too.
    """

    def __init__(
        self,
        markers: Sequence[str],
        decode: BlockDecoder,
        end_marker: str | None = None,
        leading_json: bool = False,
    ) -> None:
        self.markers = tuple(markers)
        self.decode = decode
        self.end_marker = end_marker
        self.leading_json = leading_json
        self.buffer = ""
        self.in_block = False
        self.marker = ""  # the marker that opened the current block
        self.json_end = JsonEnd()
        self.scanned = 0  # characters of the block the JSON scanner has seen
        self.seen_text = False  # anything but blanks has reached the reply
        self.called = False  # a call has been made
        self.strip_next = True  # blanks at the start of the reply and after a call go
        self.pending_space = ""  # blanks after the text so far, shown if text follows
        self.space_before = ""  # blanks before the open block

    def feed(self, piece: str) -> list[ToolEvent]:
        self.buffer += piece
        out: list[ToolEvent] = []
        progress = True
        while progress and self.buffer:
            progress = self._block(out) if self.in_block else self._text(out)
        return out

    def finish(self) -> list[ToolEvent]:
        out: list[ToolEvent] = []
        if self.in_block:
            calls = None if self.json_end.invalid else self.decode(self.buffer)
            if calls:
                out.extend(calls)
                self.called = True
            else:
                self._not_a_call(self.marker + self.buffer, out)
        else:
            self._emit(self.buffer, out)
        if not self.called and self.pending_space:
            out.append(self.pending_space)
        self.buffer = self.pending_space = ""
        return out

    def _text(self, out: list[ToolEvent]) -> bool:
        if self.leading_json and not self.seen_text and not self.called:
            stripped = self.buffer.lstrip()
            if not stripped:
                return False
            if stripped.startswith("{"):
                self._open(out, "", len(self.buffer) - len(stripped), 0)
                return True
        found = [(self.buffer.find(m), m) for m in self.markers if m in self.buffer]
        if found:
            index, marker = min(found)
            self._open(out, marker, index, len(marker))
            return True
        keep = _partial_marker_length(self.buffer, self.markers)
        self._emit(self.buffer[: len(self.buffer) - keep], out)
        self.buffer = self.buffer[len(self.buffer) - keep :]
        return False

    def _open(self, out: list[ToolEvent], marker: str, index: int, length: int) -> None:
        self._emit(self.buffer[:index], out)
        self.space_before, self.pending_space = self.pending_space, ""
        self.buffer = self.buffer[index + length :]
        self.in_block, self.marker, self.json_end, self.scanned = True, marker, JsonEnd(), 0

    def _block(self, out: list[ToolEvent]) -> bool:
        if self.end_marker is not None:
            end = self.buffer.find(self.end_marker)
            if end == -1:
                return False
            block, rest = self.buffer[:end], self.buffer[end + len(self.end_marker) :]
            closing = self.end_marker
        else:
            found = self.json_end.feed(self.buffer[self.scanned :])
            if self.json_end.invalid:  # not JSON after the marker: it was text
                found = len(self.buffer) - self.scanned
            elif found is None:
                self.scanned = len(self.buffer)
                return False
            cut = self.scanned + found
            block, rest, closing = self.buffer[:cut], self.buffer[cut:], ""
        calls = None if self.json_end.invalid else self.decode(block)
        if calls:
            out.extend(calls)
            self.called = self.strip_next = True
        else:
            self._not_a_call(self.marker + block + closing, out)
        self.buffer, self.in_block = rest, False
        return True

    def _not_a_call(self, text: str, out: list[ToolEvent]) -> None:
        """A block that turned out not to be a call: it was text, blanks before it too."""
        self.pending_space = self.space_before
        self._emit(text, out)

    def _emit(self, text: str, out: list[ToolEvent]) -> None:
        if self.strip_next:
            text = text.lstrip()
        if not text:
            return
        self.seen_text, self.strip_next = True, False
        body = text.rstrip()
        if not body:
            self.pending_space += text
            return
        out.append(self.pending_space + body)
        self.pending_space = text[len(body) :]


def _partial_marker_length(text: str, markers: Sequence[str]) -> int:
    """The longest end of ``text`` that is the start of a marker."""
    best = 0
    for marker in markers:
        for length in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:length]):
                best = length
                break
    return best
