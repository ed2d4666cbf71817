"""JSON schemas checked for the grammar: what is kept, what is refused (naming the keyword
and its JSON-pointer path), and hostile schemas answered in bounded time."""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel, Field

from localchat.errors import InvalidRequest
from localchat.formats.structured import (
    check_json_schema,
    grammar_for_json_object,
    grammar_for_json_schema,
)
from localchat.llamacpp.grammar import GBNF_KEY


def refusal(schema: object) -> str:
    with pytest.raises(InvalidRequest) as caught:
        check_json_schema(schema, "response_format")  # type: ignore[arg-type]
    message = caught.value.one_line()
    assert message.startswith("response_format")
    assert "\n" not in message
    return message


# ---- refused keywords: each names itself and where it is ----------------------------

UNSUPPORTED = [
    ({"type": "number", "multipleOf": 0.5}, "multipleOf", "/"),
    ({"type": "integer", "multipleOf": 3}, "multipleOf", "/"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems", "/"),
    ({"properties": {"x": {"not": {"type": "null"}}}}, "not", "/properties/x"),
    ({"if": {"type": "string"}, "then": {"minLength": 2}}, "if", "/"),
    ({"type": "object", "then": {"required": ["a"]}}, "then", "/"),
    ({"type": "object", "patternProperties": {"^x": {}}}, "patternProperties", "/"),
    ({"type": "object", "propertyNames": {"maxLength": 3}}, "propertyNames", "/"),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired", "/"),
    ({"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}}, "dependentSchemas", "/"),
    ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties", "/"),
    ({"type": "array", "contains": {"type": "integer"}}, "contains", "/"),
    ({"type": "array", "items": {"type": "array", "contains": {}}}, "contains", "/items"),
    ({"type": "string", "format": "email"}, "format", "/"),
    ({"type": "string", "format": "uri"}, "format", "/"),
    ({"type": "number", "minimum": 0}, "minimum", "/"),
    ({"type": "number", "exclusiveMaximum": 1.5}, "exclusiveMaximum", "/"),
    ({"$ref": "https://example.com/schema.json"}, "$ref", "/"),
    ({"$ref": "other.json#/defs/a"}, "$ref", "/"),
    ({"$defs": {"a": {"$dynamicAnchor": "a"}}, "$dynamicRef": "#a"}, "$dynamicRef", "/"),
    ({"properties": {"a": {"$id": "https://x/a", "type": "string"}}}, "$id", "/properties/a"),
    ({"type": "string", "pattern": "^(?=a)a$"}, "pattern", "/"),
    ({"type": "string", "pattern": "^(a)\\1$"}, "pattern", "/"),
    ({"type": "string", "pattern": "\\bword\\b"}, "pattern", "/"),
    ({"type": "string", "pattern": "^a$|^b"}, "pattern", "/"),
    ({"type": "string", "pattern": "^(a*)*$"}, "pattern", "/"),
    ({"type": "string", "pattern": "^a{2000}$"}, "pattern", "/"),
    ({"type": "string", "pattern": "^x", "maxLength": 4}, "maxLength", "/"),
    ({"type": "string", "format": "date", "pattern": "^2"}, "format", "/"),
    ({"type": "object", "minProperties": 1}, "minProperties", "/"),
    ({"properties": {"a": {}}, "maxProperties": 0}, "maxProperties", "/"),
    ({"type": "array", "minItems": 5000}, "minItems", "/"),
    ({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}, "oneOf", "/"),
    ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, "oneOf", "/"),
    ({"anyOf": [{"type": "string"}], "oneOf": [{"type": "null"}]}, "oneOf", "/"),
    ({"allOf": [{"pattern": "^a"}, {"pattern": "^b"}], "type": "string"}, "pattern", "/"),
]


@pytest.mark.parametrize(("schema", "keyword", "pointer"), UNSUPPORTED)
def test_a_keyword_the_grammar_cannot_enforce_is_refused_by_name_and_path(
    schema: dict, keyword: str, pointer: str
) -> None:
    message = refusal(schema)
    assert f"{keyword!r} at {pointer}: not supported" in message


def test_an_unsupported_keyword_deep_inside_refs_is_refused_at_its_own_path() -> None:
    schema = {
        "$defs": {
            "Item": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}}
        },
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
    }
    assert "'multipleOf' at /$defs/Item/properties/n" in refusal(schema)


def test_a_vacuous_keyword_for_another_type_is_not_refused() -> None:
    # multipleOf constrains numbers only: for a string it says nothing, so nothing is lost.
    assert check_json_schema({"type": "string", "multipleOf": 3}).body == {"type": "string"}
    assert check_json_schema({"type": "integer", "multipleOf": 1}).body == {"type": "integer"}


# ---- unsatisfiable or malformed -----------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        (
            {"type": "object", "properties": {"a": {}}, "required": ["b"]},
            "'b' is not in properties",
        ),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer"),
        ({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 4}, "no integer"),
        ({"type": "string", "enum": [1, 2]}, "no value satisfies"),
        ({"const": "abc", "maxLength": 2}, "no value satisfies"),
        ({"type": "string", "minLength": 3, "maxLength": 2}, "below minLength"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "no common type"),
        ({"type": "integer", "minimum": 10**20}, "beyond 16-digit"),
        ({"type": "string", "pattern": "^[b-a]$"}, "'pattern' at /: not a valid schema"),
        ({"type": "string", "pattern": "^(ab$"}, "not a valid schema"),
        ({"type": 5}, "'type' at /: not a valid schema"),
        ({"type": "object", "required": "a"}, "'required' at /: not a valid schema"),
        ({"items": False, "type": "array", "minItems": 1}, "nothing satisfies"),
    ],
)
def test_an_unsatisfiable_or_malformed_schema_is_refused(schema: dict, words: str) -> None:
    assert words in refusal(schema)


@pytest.mark.parametrize("schema", [[{"type": "string"}], "string", True, 3, None])
def test_a_schema_that_is_not_a_json_object_is_refused(schema: object) -> None:
    assert "must be a JSON object" in refusal(schema)


def test_hostile_schemas_are_refused_quickly() -> None:
    deep: dict = {"type": "string"}
    for _ in range(200):
        deep = {"type": "array", "items": deep}
    wide = {"enum": list(range(20_000))}
    huge_text = {"type": "string", "description": "x" * 2_000_000}
    loop = {"$ref": "#"}
    left_recursive = {
        "$defs": {
            "a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]},
            "b": {"$ref": "#/$defs/a"},
        },
        "$ref": "#/$defs/a",
    }
    all_of_loop = {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}
    # Each level's allOf inlines the next level twice: 2**30 parts if nothing bounded it.
    doubling: dict = {"$defs": {"l30": {"type": "object", "properties": {"x": {"type": "null"}}}}}
    for level in range(30):
        part = {"$ref": f"#/$defs/l{level + 1}"}
        doubling["$defs"][f"l{level}"] = {"allOf": [part, part]}
    doubling["$ref"] = "#/$defs/l0"
    started = time.monotonic()
    for schema, words in [
        (deep, "too large or too deeply nested"),
        (wide, "too large"),
        (huge_text, "too large"),
        (loop, "refers to itself"),
        (left_recursive, "refers to itself"),
        (all_of_loop, "contains itself"),
        (doubling, "too many parts"),
    ]:
        assert words in refusal(schema)
    assert time.monotonic() - started < 60  # generous: a bound, not a speed target


def test_no_user_regex_runs_in_python_and_one_of_is_bounded() -> None:
    # Filtering enum values through "^(a+)+$" would backtrack for ages in Python's re.
    evil = {"type": "string", "enum": ["a" * 40 + "b"], "pattern": "^(a+)+$"}
    assert "'enum' at /: not supported beside keywords that use pattern" in refusal(evil)
    many = {"oneOf": [{"const": i} for i in range(65)]}
    assert "past 64 alternatives" in refusal(many)
    assert check_json_schema({"oneOf": [{"const": i} for i in range(64)]}).body["anyOf"]
    assert "alternatives 0 and 1" in refusal({"oneOf": [{"const": 1}, {"const": 1.0}]})
    assert len(check_json_schema({"oneOf": [{"const": True}, {"const": 1}]}).body["anyOf"]) == 2


def test_non_json_values_are_refused() -> None:
    assert "not a JSON number" in refusal({"type": "integer", "maximum": float("nan")})
    assert "not a JSON value" in refusal({"type": "string", "default": object()})
    assert "keys must be strings" in refusal({"properties": {1: {"type": "string"}}})


# ---- what is kept ---------------------------------------------------------------------


def test_recursion_through_an_object_is_fine() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    }
    normalized = check_json_schema(tree)
    (key,) = normalized.defs
    assert normalized.body == {"$ref": f"#/$defs/{key}"}
    children = normalized.defs[key]["properties"]["children"]
    assert children["items"] == {"$ref": f"#/$defs/{key}"}


def test_annotations_and_unknown_keywords_are_dropped_and_types_distributed() -> None:
    schema = {
        "title": "T",
        "description": "d",
        "x-vendor": {"not": "a keyword here"},
        "type": ["string", "null"],
        "maxLength": 3,
        "default": None,
        "examples": ["a"],
    }
    assert check_json_schema(schema).body == {
        "anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]
    }


def test_a_user_cannot_inject_gbnf() -> None:
    body = check_json_schema({"type": "object", GBNF_KEY: 'root ::= "pwned"'}).body
    assert body == {"type": "object"}


def test_extra_properties_are_not_generated_when_properties_are_listed() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert check_json_schema(schema).body == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": [],
    }
    mapping = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert check_json_schema(mapping).body["additionalProperties"] == {"type": "integer"}


def test_all_of_and_siblings_are_merged_exactly() -> None:
    schema = {
        "allOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "integer", "minimum": 0}},
                "required": ["a"],
            },
            {"properties": {"a": {"maximum": 9}, "b": {"type": "string"}}},
        ]
    }
    body = check_json_schema(schema).body
    assert body["required"] == ["a"]
    assert set(body["properties"]) == {"a", "b"}
    assert GBNF_KEY in body["properties"]["a"]  # 0..9 as an integer range


def test_all_of_with_a_closed_part_drops_what_it_forbids() -> None:
    schema = {
        "allOf": [
            {"properties": {"a": {}, "b": {}}, "additionalProperties": False},
            {"properties": {"a": {"type": "string"}, "c": {"type": "string"}}},
        ]
    }
    assert set(check_json_schema(schema).body["properties"]) == {"a", "b"}
    forbidden = {
        "allOf": [
            {"properties": {"a": {}}, "additionalProperties": False},
            {"required": ["c"], "properties": {"c": {}}},
        ]
    }
    assert "'c' is required by one part" in refusal(forbidden)


def test_one_of_with_disjoint_alternatives_is_kept() -> None:
    by_type = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert len(check_json_schema(by_type).body["anyOf"]) == 2
    tagged = {
        "$defs": {
            "Cat": {
                "type": "object",
                "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
                "required": ["kind"],
            },
            "Dog": {
                "type": "object",
                "properties": {"kind": {"const": "dog"}},
                "required": ["kind"],
            },
        },
        "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
        "discriminator": {"propertyName": "kind"},
    }
    assert len(check_json_schema(tagged).body["anyOf"]) == 2


def test_enum_values_are_filtered_by_their_siblings() -> None:
    schema = {"type": "string", "enum": ["a", "bb", 3, None], "maxLength": 1}
    assert check_json_schema(schema).body == {"const": "a"}


def test_big_bounds_are_narrowed_not_refused() -> None:
    body = check_json_schema({"type": "string", "maxLength": 100_000}).body
    assert body == {"type": "string", "maxLength": 2_000}
    items = check_json_schema({"type": "array", "maxItems": 10**6}).body
    assert items["maxItems"] == 1_000


class Address(BaseModel):
    street: str
    zip_code: str = Field(pattern=r"^\d{5}$")


class Person(BaseModel):
    name: str = Field(max_length=40)
    age: int = Field(ge=0, le=150)
    nickname: str | None = None
    addresses: list[Address] = []


def test_a_pydantic_model_class_is_accepted() -> None:
    normalized = check_json_schema(Person)
    assert set(normalized.body["properties"]) == {"name", "age", "nickname", "addresses"}
    assert normalized.body["required"] == ["name", "age"]
    grammar = grammar_for_json_schema(Person)
    assert "root ::=" in grammar


def test_grammars_name_refs_apart_from_properties() -> None:
    # The stock converter names a $ref's rule after the pointer's last segment ("name"),
    # which is also a property's name here: the two must stay distinct rules.
    schema = {
        "$defs": {"name": {"type": "integer"}},
        "type": "object",
        "properties": {"name": {"type": "string"}, "count": {"$ref": "#/$defs/name"}},
        "required": ["name", "count"],
    }
    rules = dict(line.split(" ::= ", 1) for line in grammar_for_json_schema(schema).splitlines())
    assert rules["value-name-kv"].endswith(" string")
    assert rules[rules["value-count"]] == "integer"


def test_the_any_object_grammar_is_one_object() -> None:
    grammar = grammar_for_json_object()
    assert grammar.splitlines()[0].startswith("array ::=")
    assert "root ::= value-" in grammar and "value- ::= object" in grammar
