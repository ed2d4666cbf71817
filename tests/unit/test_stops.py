"""Stop strings over streamed pieces: nothing after a stop is shown, nothing before is lost."""

from __future__ import annotations

import pytest

from localchat.engine.stops import StopStringFilter

TEXT = "Hello there<|endofutterance|>never shown"


@pytest.mark.parametrize("cut", range(1, len(TEXT)))
def test_every_split_point(cut: int) -> None:
    stops = StopStringFilter(["<|endofutterance|>"])
    shown, stopped = stops.feed(TEXT[:cut])
    if not stopped:
        more, stopped = stops.feed(TEXT[cut:])
        shown += more
    assert stopped and shown == "Hello there"


def test_a_near_miss_is_released() -> None:
    stops = StopStringFilter(["</s>"])
    shown, stopped = stops.feed("a </")
    assert (shown, stopped) == ("a ", False)
    more, stopped = stops.feed("b>")
    assert (shown + more, stopped) == ("a </b>", False)
    assert stops.flush() == ""


def test_flush_returns_held_back_tail() -> None:
    stops = StopStringFilter(["STOP"])
    shown, _ = stops.feed("abcST")
    assert shown + stops.flush() == "abcST"
