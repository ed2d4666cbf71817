"""engine.repetition: a reply that loops is stopped, whatever backend produced it."""

from __future__ import annotations

from localchat.engine.repetition import MIN_SPAN_CHARS, RepetitionGuard, guard_stream, is_looping
from localchat.types import GenerationStats, TextStream


def test_a_loop_is_found_once_it_spans_enough_text() -> None:
    unit = "The answer is C. "
    copies = -(-MIN_SPAN_CHARS // len(unit))
    assert not is_looping("Question: which? " + unit * (copies - 2))
    assert is_looping("Question: which? " + unit * (copies + 1))
    assert is_looping("\n" * MIN_SPAN_CHARS)


def test_ordinary_text_and_short_rules_are_not_loops() -> None:
    prose = " ".join(f"Sentence number {i} says something new." for i in range(40))
    assert not is_looping(prose)
    assert not is_looping("Title\n" + "=" * 80 + "\nBody text follows here.")
    table = "| a | b |\n|---|---|\n" + "".join(f"| {i} | {i * i} |\n" for i in range(30))
    assert not is_looping(table)


def test_guard_feeds_piece_by_piece() -> None:
    guard = RepetitionGuard()
    pieces = ["The ", "answer ", "is ", "C. "] * 30
    tripped_at = next(i for i, piece in enumerate(pieces) if guard.feed(piece))
    assert 4 * 4 <= tripped_at < len(pieces) - 4


def test_guard_stream_stops_the_backend_and_says_why() -> None:
    stats = GenerationStats(finish_reason="cancelled")
    closed: list[bool] = []

    def backend_stream():  # stands in for a backend's generator: loops for ever
        try:
            while True:
                yield "la la "
        finally:
            closed.append(True)

    text = "".join(guard_stream(TextStream(backend_stream(), stats)))
    assert stats.finish_reason == "repetition" and closed == [True]
    assert MIN_SPAN_CHARS <= len(text) < MIN_SPAN_CHARS + 64


def test_closing_the_guarded_stream_closes_the_backend() -> None:
    closed: list[bool] = []

    def backend_stream():
        try:
            for i in range(1000):
                yield f"word{i} "
        finally:
            closed.append(True)

    stream = guard_stream(TextStream(backend_stream(), GenerationStats()))
    assert next(stream) == "word0 "
    stream.close()
    assert closed == [True]
