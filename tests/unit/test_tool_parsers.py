"""Streaming tool-call parsers: each native syntax and the generic fallback, with the
marker and the JSON split at every position, text before a call, several calls, and
replies that are not calls coming back as text."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from localchat.formats.tools.base import PlainParser, ToolCallParser, ToolEvent
from localchat.formats.tools.generic import GenericParser
from localchat.formats.tools.native import Hermes, Llama3, MistralNemo
from localchat.types import ToolCall

NAMES = ("get_weather", "get_time")
PARIS = ToolCall("get_weather", {"city": "Paris", "unit": "c"})
CET = ToolCall("get_time", {"tz": "CET"})


def merged(events: Sequence[ToolEvent]) -> list[ToolEvent]:
    """Adjacent text pieces joined (how a client sees the stream)."""
    out: list[ToolEvent] = []
    for event in events:
        if isinstance(event, str) and out and isinstance(out[-1], str):
            out[-1] += event
        else:
            out.append(event)
    return out


def run(parser: ToolCallParser, pieces: Sequence[str]) -> list[ToolEvent]:
    events: list[ToolEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    return merged(events + parser.finish())


def every_split(factory, text: str, expected: list[ToolEvent]) -> None:
    """The same events whether the text comes whole, in two pieces split at every
    position, in three pieces, or one character at a time."""
    assert run(factory(), [text]) == expected
    assert run(factory(), list(text)) == expected
    for cut in range(len(text) + 1):
        assert run(factory(), [text[:cut], text[cut:]]) == expected, cut
    for cut in range(0, len(text), 7):
        third = cut + (len(text) - cut) // 2
        assert run(factory(), [text[:cut], text[cut:third], text[third:]]) == expected, cut


HERMES = [
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>',
        [PARIS],
    ),
    (
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>',
        ["Let me look.", PARIS],
    ),
    (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}\n</tool_call>\n',
        [PARIS, CET],
    ),
    ("No tools needed: 2 < 3 and <tool is fine.", ["No tools needed: 2 < 3 and <tool is fine."]),
    (
        '<tool_call>\n{"name": "unknown", "arguments": {}}\n</tool_call>',
        ['<tool_call>\n{"name": "unknown", "arguments": {}}\n</tool_call>'],
    ),
    ('Cut short <tool_call>\n{"name": "get_wea', ['Cut short <tool_call>\n{"name": "get_wea']),
]


@pytest.mark.parametrize(("text", "expected"), HERMES)
def test_hermes(text: str, expected: list[ToolEvent]) -> None:
    every_split(lambda: Hermes().parser(NAMES), text, expected)


LLAMA = [
    ('{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}', [PARIS]),
    ('\n {"name": "get_time", "arguments": {"tz": "CET"}}', [CET]),
    (
        'Checking.<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}',
        ["Checking.", PARIS],
    ),
    ('{"answer": 42}', ['{"answer": 42}']),  # JSON that is not a call is text
    ("Plain {text} with braces.", ["Plain {text} with braces."]),
    (
        '{"name": "get_weather", "parameters": "not json"}',
        ['{"name": "get_weather", "parameters": "not json"}'],
    ),
]


@pytest.mark.parametrize(("text", "expected"), LLAMA)
def test_llama3(text: str, expected: list[ToolEvent]) -> None:
    every_split(lambda: Llama3().parser(NAMES), text, expected)


MISTRAL = [
    (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}, "id": "abcdefghi"}]',
        [ToolCall("get_weather", {"city": "Paris", "unit": "c"}, "abcdefghi")],
    ),
    (
        'Sure. [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}, '
        '{"name": "get_time", "arguments": {"tz": "CET"}}]',
        ["Sure.", PARIS, CET],
    ),
    ("[TOOL_CALLS] oops", ["[TOOL_CALLS] oops"]),
    ("An [array] of [TOOL thoughts]", ["An [array] of [TOOL thoughts]"]),
]


@pytest.mark.parametrize(("text", "expected"), MISTRAL)
def test_mistral(text: str, expected: list[ToolEvent]) -> None:
    every_split(lambda: MistralNemo().parser(NAMES), text, expected)


GENERIC = [
    ('{"response": "Hello there"}', ["Hello there"]),
    (
        '{ "response" : "esc\\"aped \\\\ \\n \\u00e9 \\ud83d\\ude00 end" }',
        ['esc"aped \\ \n é 😀 end'],
    ),
    (
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}, '
        '{"name": "get_time", "arguments": {"tz": "CET"}}]}',
        [PARIS, CET],
    ),
    ("I will not use JSON.", ["I will not use JSON."]),
    (
        '{"tool_calls": [{"name": "nope", "arguments": {}}]}',
        ['{"tool_calls": [{"name": "nope", "arguments": {}}]}'],
    ),
    ('{"other": 1}', ['{"other": 1}']),
    ('{"response": "cut sh', ["cut sh"]),
    ('{"response": "ok"} and then prose', ["ok and then prose"]),
]


@pytest.mark.parametrize(("text", "expected"), GENERIC)
def test_generic(text: str, expected: list[ToolEvent]) -> None:
    every_split(lambda: GenericParser(NAMES), text, expected)


def test_generic_streams_the_response_as_it_arrives() -> None:
    parser = GenericParser(NAMES)
    assert parser.feed('{"response": "Hel') == ["Hel"]
    assert parser.feed("lo\\") == ["lo"]  # the escape waits for its second character
    assert parser.feed("n wor") == ["\n wor"]
    assert parser.feed('ld"}') == ["ld"]
    assert parser.finish() == []


def test_hermes_streams_text_before_the_call_without_waiting() -> None:
    parser = Hermes().parser(NAMES)
    assert parser.feed("The weather ") == ["The weather"]
    assert parser.feed("is <tool") == [" is"]  # "<tool" may start a marker: held back
    assert parser.feed("box>") == [" <toolbox>"]


def test_plain_parser_passes_text_through() -> None:
    parser = PlainParser()
    assert run(parser, ["a <tool_call>", " b"]) == ["a <tool_call> b"]
