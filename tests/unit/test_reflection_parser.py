"""Reflection's tagged replies, split as they stream, at every possible chunk boundary."""

from __future__ import annotations

import pytest

from localchat.formats import ReflectionParser, ReplyPart, split_reply, visible_text
from localchat.formats.reflection import merge_parts

REPLY = (
    "<thinking>\nThe user asks for 17 * 23. 17 * 20 = 340, 17 * 3 = 41, so 381.\n"
    "<reflection>\nWait: 17 * 3 is 51, not 41. So 340 + 51 = 391.\n</reflection>\n"
    "Checking: 391 / 23 = 17. Correct.\n</thinking>\n\n"
    "<output>\n17 × 23 = **391**.\n</output>"
)
EXPECTED = [
    ReplyPart("thinking", "The user asks for 17 * 23. 17 * 20 = 340, 17 * 3 = 41, so 381."),
    ReplyPart("reflection", "Wait: 17 * 3 is 51, not 41. So 340 + 51 = 391."),
    ReplyPart("thinking", "Checking: 391 / 23 = 17. Correct."),
    ReplyPart("output", "17 × 23 = **391**."),
]

REFLECTION_AFTER_THINKING = (
    "<thinking>A cat has 4 legs; 3 cats have 12.</thinking>\n"
    "<reflection>Recount: 3 × 4 = 12. Fine.</reflection>\n"
    "<output>12 legs.</output>\n"
)
REFLECTION_AFTER_EXPECTED = [
    ReplyPart("thinking", "A cat has 4 legs; 3 cats have 12."),
    ReplyPart("reflection", "Recount: 3 × 4 = 12. Fine."),
    ReplyPart("output", "12 legs."),
]


def stream(chunks: list[str]) -> list[ReplyPart]:
    parser = ReflectionParser()
    parts: list[ReplyPart] = []
    for chunk in chunks:
        parts.extend(parser.feed(chunk))
    parts.extend(parser.finish())
    return merge_parts(parts)


def tag_positions(text: str) -> list[int]:
    """Every index inside or at the edge of a tag."""
    positions: set[int] = set()
    start = text.find("<")
    while start != -1:
        end = text.index(">", start) + 1
        positions.update(range(start, end + 1))
        start = text.find("<", end)
    return sorted(positions)


def test_whole_reply() -> None:
    assert split_reply(REPLY) == EXPECTED


@pytest.mark.parametrize("split", range(len(REPLY) + 1))
def test_every_single_split_point(split: int) -> None:
    assert stream([REPLY[:split], REPLY[split:]]) == EXPECTED


def test_every_pair_of_split_points_inside_tags() -> None:
    positions = tag_positions(REPLY)
    for first in positions:
        for second in positions:
            if second <= first:
                continue
            chunks = [REPLY[:first], REPLY[first:second], REPLY[second:]]
            assert stream(chunks) == EXPECTED, (first, second)


def test_one_character_at_a_time() -> None:
    assert stream(list(REPLY)) == EXPECTED
    assert stream(list(REFLECTION_AFTER_THINKING)) == REFLECTION_AFTER_EXPECTED


@pytest.mark.parametrize("split", range(len(REFLECTION_AFTER_THINKING) + 1))
def test_reflection_after_thinking(split: int) -> None:
    text = REFLECTION_AFTER_THINKING
    assert stream([text[:split], text[split:]]) == REFLECTION_AFTER_EXPECTED


def test_parts_arrive_before_the_reply_ends() -> None:
    parser = ReflectionParser()
    assert parser.feed("<thinking>Let me") == [ReplyPart("thinking", "Let me")]
    assert parser.feed(" think</thi") == [ReplyPart("thinking", " think")]
    assert parser.feed("nking><output>Done") == [ReplyPart("output", "Done")]
    assert parser.finish() == []


def test_thinking_never_closed_then_output() -> None:
    text = "<thinking>Step 1. Step 2.\n<output>Answer.</output>"
    assert split_reply(text) == [
        ReplyPart("thinking", "Step 1. Step 2."),
        ReplyPart("output", "Answer."),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<thinking>Still thinking when the tokens ran out", [ReplyPart("thinking", "Still thinking when the tokens ran out")]),
        ("<thinking>a<reflection>b", [ReplyPart("thinking", "a"), ReplyPart("reflection", "b")]),
        ("<output>The answer is 4", [ReplyPart("output", "The answer is 4")]),
        ("<thinking>cut mid-tag </outp", [ReplyPart("thinking", "cut mid-tag </outp")]),
        ("<thinking>x</thinking><outp", [ReplyPart("thinking", "x"), ReplyPart("text", "<outp")]),
    ],
)  # fmt: skip
def test_unclosed_tags(text: str, expected: list[ReplyPart]) -> None:
    assert split_reply(text) == expected
    assert stream(list(text)) == expected


def test_untagged_reply_is_text() -> None:
    assert split_reply("Just an answer, 1 < 2 and <b>bold</b>.") == [
        ReplyPart("text", "Just an answer, 1 < 2 and <b>bold</b>.")
    ]


def test_stray_closing_tag_is_dropped() -> None:
    assert split_reply("</thinking>Hello</output>") == [ReplyPart("text", "Hello")]


def test_less_than_signs_inside_sections() -> None:
    text = "<thinking>if a<b and b<c then a<c</thinking><output>a<c</output>"
    expected = [ReplyPart("thinking", "if a<b and b<c then a<c"), ReplyPart("output", "a<c")]
    assert split_reply(text) == expected
    assert stream(list(text)) == expected


def test_visible_text() -> None:
    parts = split_reply(REPLY)
    assert visible_text(parts) == "17 × 23 = **391**."
    shown = visible_text(parts, show_thinking=True)
    assert "Wait: 17 * 3 is 51" in shown and shown.endswith("**391**.")
    assert visible_text(split_reply("no tags here")) == "no tags here"
