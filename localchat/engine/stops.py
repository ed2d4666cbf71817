"""Stop strings over a stream of text pieces, holding back only what could start a stop."""

from __future__ import annotations


class StopStringFilter:
    """Feed decoded pieces; get back text that is safe to show and whether a stop was hit."""

    def __init__(self, stop_strings: tuple[str, ...] | list[str]) -> None:
        self._stops = tuple(s for s in stop_strings if s)
        self._pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        if not self._stops:
            return piece, False
        text = self._pending + piece
        cut = _first_stop(text, self._stops)
        if cut is not None:
            self._pending = ""
            return text[:cut], True
        keep = _longest_stop_prefix_suffix(text, self._stops)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self, piece: str = "") -> str:
        text, _ = self.feed(piece) if piece else ("", False)
        rest, self._pending = self._pending, ""
        return text + rest


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    positions = [pos for pos in (text.find(stop) for stop in stops) if pos >= 0]
    return min(positions) if positions else None


def _longest_stop_prefix_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:length]):
                best = length
                break
    return best
