"""Schema grammars on real llama.cpp: its grammar sampler accepts exactly what the schema
allows (checked token by token on Gemma's vocabulary), and the Gemma 3 270M base model
constrained by them writes JSON that parses and validates."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat.formats.structured import grammar_for_json_object, grammar_for_json_schema

pytestmark = pytest.mark.llama
llama_cpp = pytest.importorskip("llama_cpp")
jsonschema = pytest.importorskip("jsonschema")

from tests.fixtures.gbnf_oracle import GrammarOracle, generate  # noqa: E402
from tests.fixtures.gbnf_oracle import oracle as oracle  # noqa: E402  (the fixture)

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> Iterator[llama_cpp.Llama]:
    llm = llama_cpp.Llama(model_path=str(gemma_path), n_ctx=1024, verbose=False)
    yield llm
    llm.close()


def valid(schema: dict, value: object) -> bool:
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS).is_valid(value)


# ---- the grammar accepts exactly the schema's values --------------------------------


@pytest.mark.parametrize(
    "bounds",
    [
        {"minimum": -15, "maximum": 123},
        {"minimum": 7},
        {"maximum": -3},
        {"exclusiveMinimum": 0, "exclusiveMaximum": 1000},
        {"minimum": 0.5, "maximum": 99.5},
        {"minimum": 1995, "maximum": 2025},
    ],
)
def test_integer_bounds_accept_exactly_the_range(oracle: GrammarOracle, bounds: dict) -> None:
    schema = {"type": "integer", **bounds}
    grammar = grammar_for_json_schema(schema)
    for number in [*range(-60, 260), 999, 1000, 1001, 1994, 1995, 2025, 2026, 10**15, -(10**15)]:
        assert oracle.accepts(grammar, json.dumps(number)) == valid(schema, number), number
    assert not oracle.accepts(grammar, "5.5")
    assert not oracle.accepts(grammar, "007")


PATTERNS = [
    ("^[a-z]{2,4}-\\d{3}$", ["ab-123", "abcd-000"], ["a-123", "abcde-123", "ab-12", "AB-123"]),
    ("^(?:ab|cd)*e?$", ["", "abcd", "cde", "e"], ["abc", "ee", "x"]),
    ("^\\w+@\\w+\\.com$", ["me@host.com"], ["me@host.org", "@host.com", "me@host.comm"]),
    ("^[^aeiou]+$", ["xyz", 'q"t', "b\\c", "t\tb"], ["xa", ""]),
    ('^say "\\S+"$', ['say "hi"'], ["say hi", 'say "h i"']),
    ("colou?r", ["color", "my colour!", "colorful"], ["colr", "COLOR"]),
    ("^\\d{3}", ["123", "1234x"], ["12x"]),
    ("x$", ["boxx", "x"], ["xy"]),
    ("^.{3}$", ["a.b", "\u00e9\u00e8\u00ea", "a\tb"], ["ab", "a\nbc"]),
    ("^\\u00e9+\\x41$", ["\u00e9\u00e9A"], ["eA"]),
    ("^[\\]\\-]+$", ["]-]"], ["a"]),
]


@pytest.mark.parametrize(("pattern", "good", "bad"), PATTERNS)
def test_patterns_accept_what_the_regex_matches(
    oracle: GrammarOracle, pattern: str, good: list[str], bad: list[str]
) -> None:
    schema = {"type": "string", "pattern": pattern}
    grammar = grammar_for_json_schema(schema)
    for text in good + bad:
        assert (re.search(pattern, text) is not None) == (text in good), text
        encoded = json.dumps(text, ensure_ascii=False)
        assert oracle.accepts(grammar, encoded) == (text in good), (pattern, text)


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        (
            "date",
            ["2024-02-28", "1999-12-31", "2023-04-30"],
            ["2023-02-30", "2023-13-01", "2023-4-01", "2023-04-31"],
        ),
        ("time", ["23:59:59Z", "08:00:00.5+02:00"], ["24:00:00Z", "08:00:00"]),
        ("date-time", ["2024-01-31T10:20:30Z"], ["2024-01-31 10:20:30Z", "2024-01-31T10:20:30"]),
        ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
    ],
)
def test_string_formats(oracle: GrammarOracle, fmt: str, good: list[str], bad: list[str]) -> None:
    schema = {"type": "string", "format": fmt}
    grammar = grammar_for_json_schema(schema)
    for text in good:
        assert oracle.accepts(grammar, json.dumps(text)), text
        assert valid(schema, text)
    for text in bad:
        assert not oracle.accepts(grammar, json.dumps(text)), text


def test_strings_are_json_strings_counted_in_characters(oracle: GrammarOracle) -> None:
    grammar = grammar_for_json_schema({"type": "string", "minLength": 2, "maxLength": 3})
    assert oracle.accepts(grammar, '"\\n\\u00e9"')  # two characters, written escaped
    assert oracle.accepts(grammar, '"a\\"b"')
    assert not oracle.accepts(grammar, '"abcd"')
    assert not oracle.accepts(grammar, '"a"')
    plain = grammar_for_json_schema({"type": "string"})
    assert not oracle.accepts(plain, '"a\nb"')  # a raw newline is not JSON
    assert not oracle.accepts(plain, '"\\ud83d"')  # nor is a lone surrogate
    assert oracle.accepts(plain, '"\U0001f600 \\t"')


def test_objects_arrays_and_constants(oracle: GrammarOracle) -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"enum": ["a", "b", 3, None]},
            "tags": {"type": "array", "items": {"const": "t"}, "minItems": 1, "maxItems": 2},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
            "extra": {"type": "object", "additionalProperties": {"type": "number"}},
        },
        "required": ["id", "kind"],
    }
    grammar = grammar_for_json_schema(schema)
    good = [
        {"id": 1, "kind": None},
        {"id": -2, "kind": 3, "tags": ["t", "t"], "pair": ["x", True]},
        {"id": 0, "kind": "b", "extra": {"x": 1.5, "y": -2e3}},
        {"id": 0, "kind": "a", "extra": {}},
    ]
    bad = [
        {"kind": "a"},
        {"id": 1, "kind": "c"},
        {"id": 1, "kind": "a", "tags": []},
        {"id": 1, "kind": "a", "tags": ["t", "t", "t"]},
        {"id": 1, "kind": "a", "pair": ["x"]},
        {"id": 1, "kind": "a", "other": 1},
        {"id": 1, "kind": "a", "extra": {"x": "1"}},
    ]
    for value in good:
        assert valid(schema, value)
        assert oracle.accepts(grammar, json.dumps(value)), value
    for value in bad:
        assert not oracle.accepts(grammar, json.dumps(value)), value
    assert not oracle.accepts(grammar, '{"id": 1, "kind": "a"} trailing')


def test_recursive_schema(oracle: GrammarOracle) -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v"],
            }
        },
        "$ref": "#/$defs/node",
    }
    grammar = grammar_for_json_schema(tree)
    assert oracle.accepts(grammar, '{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}, {"v": 4}]}')
    assert not oracle.accepts(grammar, '{"v": 1, "kids": [{"kids": []}]}')


def test_any_object(oracle: GrammarOracle) -> None:
    grammar = grammar_for_json_object()
    assert oracle.accepts(grammar, '{"a": [1, {"b": null}], "c": "d"}')
    assert oracle.accepts(grammar, "{}")
    for text in ["[]", '"x"', "1", '{"a": 1', '{"a": "\n"}']:
        assert not oracle.accepts(grammar, text), text


# ---- the real model, constrained -----------------------------------------------------

GENERATED = {
    "nested": {
        "type": "object",
        "properties": {
            "city": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "population": {"type": "integer", "minimum": 0},
                    "country": {"type": "string", "maxLength": 40},
                },
                "required": ["name", "population"],
            },
            "founded": {"type": "integer", "minimum": 800, "maximum": 2024},
        },
        "required": ["city", "founded"],
    },
    "arrays and enums": {
        "type": "object",
        "properties": {
            "colors": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue"]},
                "minItems": 2,
                "maxItems": 3,
            },
            "size": {"enum": ["S", "M", "L"]},
            "in_stock": {"type": "boolean"},
        },
        "required": ["colors", "size", "in_stock"],
    },
    "optional and nullable": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 60},
            "subtitle": {"anyOf": [{"type": "string", "maxLength": 60}, {"type": "null"}]},
            "pages": {"type": "integer", "minimum": 1, "maximum": 5000},
            "price": {"type": "number"},
            "published": {"type": "string", "format": "date"},
        },
        "required": ["title", "pages", "published"],
    },
}


def twenty_properties() -> dict:
    kinds = [
        {"type": "string", "maxLength": 30},
        {"type": "integer", "minimum": 0, "maximum": 1000},
        {"type": "boolean"},
        {"enum": ["low", "medium", "high"]},
        {"type": "number"},
    ]
    properties = {f"field_{i:02d}": kinds[i % len(kinds)] for i in range(20)}
    return {"type": "object", "properties": properties, "required": list(properties)[:15]}


@pytest.mark.slow
@pytest.mark.parametrize("name", [*GENERATED, "twenty properties"])
def test_the_base_model_writes_valid_json_under_the_grammar(
    gemma: llama_cpp.Llama, name: str
) -> None:
    schema = twenty_properties() if name == "twenty properties" else GENERATED[name]
    grammar = grammar_for_json_schema(schema)
    prompt = f"Here is one record ({name}) as JSON:\n"
    text = generate(gemma, prompt, grammar, max_tokens=400)
    value = json.loads(text)
    jsonschema.validate(value, schema, format_checker=FORMATS)


def test_time_to_compile_a_twenty_property_grammar(oracle: GrammarOracle) -> None:
    schema = twenty_properties()
    started = time.perf_counter()
    grammar = grammar_for_json_schema(schema)
    converted = time.perf_counter()
    sampler = oracle.sampler(grammar)
    parsed = time.perf_counter()
    llama_cpp.llama_sampler_free(sampler)
    print(
        f"\n20-property schema: converted in {(converted - started) * 1000:.1f} ms, "
        f"llama.cpp grammar init {(parsed - converted) * 1000:.1f} ms, "
        f"{len(grammar)} characters, {len(grammar.splitlines())} rules"
    )
