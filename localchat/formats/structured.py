"""Structured output: a JSON schema (or a pydantic model) as the grammar llama.cpp enforces.

``grammar_for_json_schema(schema)`` checks the schema, rewrites it into the keywords the
converter (``llamacpp.grammar``) enforces exactly, and converts it.  A keyword the grammar
cannot enforce is refused with ``InvalidRequest`` naming the keyword and its JSON-pointer
path — never silently dropped.  Where the grammar allows *less* than the schema, every
reply still validates: objects get only their listed properties, a number has one
spelling, 29 February is never a ``date``.  ``grammar_for_json_object()`` is "any JSON
object" (OpenAI's ``json_object``, Ollama's ``format: "json"``).

Size, depth and reference expansion are bounded, so a hostile schema costs bounded time
and memory.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from localchat.errors import InvalidRequest
from localchat.formats.gbnf import MAX_REPEAT, STRING_FORMATS, integer_range, json_string
from localchat.formats.gbnf_pattern import PatternError, pattern_string
from localchat.formats.schema_disjoint import overlapping_pair
from localchat.formats.schema_rules import (
    ALL_TYPES,
    ANY_VALUE,
    ARRAY_UNSUPPORTED,
    BOUND_KEYS,
    OBJECT_UNSUPPORTED,
    SchemaLike,
    Unsatisfiable,
    assertions,
    check_document,
    contains_key,
    escape_pointer,
    integer_bounds,
    json_key,
    merge_parts,
    refuse,
    refuse_keywords,
    resolve_pointer,
    schema_dict,
    transparent_refs,
    value_types,
)
from localchat.llamacpp.grammar import GBNF_KEY, json_schema_grammar

__all__ = [
    "NormalizedSchema",
    "SchemaLike",
    "check_json_schema",
    "grammar_for_json_object",
    "grammar_for_json_schema",
    "schema_dict",
]

MAX_EXPANDED_NODES = 20_000  # schema nodes visited, counting every allOf/$ref expansion
MAX_INLINE_DEPTH = 32  # $ref/allOf inlined inside one another
MAX_STRING_CHARS = 2_000  # llama.cpp bounds a repetition at 2000
MAX_ONE_OF = 64  # oneOf alternatives are compared pairwise


@dataclass(frozen=True)
class NormalizedSchema:
    """A checked schema in the converter's terms: ``body`` and the ``defs`` its
    ``#/$defs/KEY`` references point into."""

    body: dict[str, Any]
    defs: dict[str, dict[str, Any]]


def check_json_schema(schema: SchemaLike, where: str = "JSON schema") -> NormalizedSchema:
    """The schema checked and normalised, or ``InvalidRequest`` naming what cannot be
    enforced (``where`` starts the message, e.g. ``response_format.json_schema``)."""
    document = schema_dict(schema, where)
    check_document(document, where)
    return _Normalizer(document, where).run()


def grammar_for_json_schema(schema: SchemaLike, where: str = "JSON schema") -> str:
    """The GBNF grammar whose every complete text is JSON valid against ``schema``."""
    normalized = check_json_schema(schema, where)
    return json_schema_grammar(normalized.body, normalized.defs)


@functools.cache
def grammar_for_json_object() -> str:
    """Any JSON object (OpenAI ``json_object``, Ollama ``format: "json"``)."""
    return json_schema_grammar({"type": "object"})


class _Normalizer:
    def __init__(self, root: dict[str, Any], where: str) -> None:
        self.root = root
        self.where = where
        self.nodes = 0
        self.def_keys: dict[str, str] = {}  # target pointer -> $defs key
        self.defs: dict[str, dict[str, Any]] = {}
        self.pending: list[tuple[str, Any, str]] = []
        self.inlining: list[str] = []

    def run(self) -> NormalizedSchema:
        body = self.node(self.root, "")
        while self.pending:
            key, target, pointer = self.pending.pop()
            self.defs[key] = self.node(target, pointer)
        self._check_cycles()
        return NormalizedSchema(body, self.defs)

    def fail(self, pointer: str, keyword: str, reason: str) -> InvalidRequest:
        return refuse(self.where, pointer, keyword, reason)

    def count(self, nodes: int, pointer: str) -> None:
        self.nodes += nodes
        if self.nodes > MAX_EXPANDED_NODES:
            raise self.fail(pointer, "$ref", "the schema expands to too many parts")

    def node(self, schema: Any, pointer: str) -> dict[str, Any]:
        self.count(1, pointer)
        if schema is True:
            return dict(ANY_VALUE)
        if schema is False or not isinstance(schema, dict):
            raise self.fail(pointer, "false", "a schema nothing satisfies")
        refuse_keywords(self.where, schema, pointer)
        if "$id" in schema and pointer:
            raise self.fail(
                pointer, "$id", "not supported: a nested $id changes what references resolve to"
            )
        if not assertions(schema):
            return dict(ANY_VALUE)
        if "$ref" in schema:
            return self._ref(schema, pointer)
        if "allOf" in schema:
            return self.node(self._merge_all_of(schema, pointer), pointer)
        if "anyOf" in schema or "oneOf" in schema:
            return self._union(schema, pointer)
        if "const" in schema or "enum" in schema:
            return self._constants(schema, pointer)
        types = value_types(schema)
        if len(types) > 1:
            return {"anyOf": [self._typed(schema, kind, pointer) for kind in types]}
        return self._typed(schema, types[0], pointer)

    # ---- references and combinations ------------------------------------------------

    def _ref(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        rest = {k: v for k, v in schema.items() if k in assertions(schema) and k != "$ref"}
        if rest:  # a $ref with constraints beside it: both apply
            return self.node({"allOf": [{"$ref": schema["$ref"]}, rest]}, pointer)
        target_pointer, target = resolve_pointer(self.root, schema["$ref"], self.where, pointer)
        key = self.def_keys.get(target_pointer)
        if key is None:
            name = target_pointer.rsplit("/", 1)[-1]
            key = f"d{len(self.def_keys)}-" + "".join(c if c.isalnum() else "-" for c in name)
            self.def_keys[target_pointer] = key
            self.pending.append((key, target, target_pointer))
        return {"$ref": f"#/$defs/{key}"}

    def _inline(self, part: Any, pointer: str) -> dict[str, Any]:
        """An allOf part with its own $ref and allOf expanded (bounded, no cycles)."""
        if part is True:
            return {}
        if not isinstance(part, dict):
            raise self.fail(pointer, "allOf", "a part nothing satisfies")
        refuse_keywords(self.where, part, pointer)
        if len(self.inlining) > MAX_INLINE_DEPTH:
            raise self.fail(pointer, "allOf", "parts nested too deeply")
        if "$ref" in part:
            target_pointer, target = resolve_pointer(self.root, part["$ref"], self.where, pointer)
            if target_pointer in self.inlining:
                raise self.fail(pointer, "$ref", "an allOf part that contains itself")
            self.inlining.append(target_pointer)
            try:
                rest = {k: v for k, v in part.items() if k != "$ref"}
                part = self._merge_all_of({"allOf": [target, rest]}, target_pointer)
            finally:
                self.inlining.pop()
        elif "allOf" in part:
            part = self._merge_all_of(part, pointer)
        return dict(part)

    def _merge_all_of(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        self.count(len(schema["allOf"]), pointer)
        parts = [{k: v for k, v in schema.items() if k != "allOf"}]
        parts += [
            self._inline(part, f"{pointer}/allOf/{index}")
            for index, part in enumerate(schema["allOf"])
        ]
        try:
            return merge_parts(parts)
        except Unsatisfiable as exc:
            raise self.fail(pointer, exc.keyword, exc.reason) from exc

    def _union(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        if "anyOf" in schema and "oneOf" in schema:
            raise self.fail(pointer, "oneOf", "not supported together with anyOf")
        keyword = "oneOf" if "oneOf" in schema else "anyOf"
        alternatives = list(schema[keyword])
        rest = {k: v for k, v in schema.items() if k in assertions(schema) and k != keyword}
        if rest:  # constraints beside the alternatives apply to each of them
            alternatives = [{"allOf": [rest, alternative]} for alternative in alternatives]
        if keyword == "oneOf":
            if len(alternatives) > MAX_ONE_OF:
                raise self.fail(pointer, "oneOf", f"not supported past {MAX_ONE_OF} alternatives")
            pair = overlapping_pair(alternatives, self.root)
            if pair is not None:
                raise self.fail(
                    pointer,
                    "oneOf",
                    f"not supported: alternatives {pair[0]} and {pair[1]} may both match, and "
                    "the grammar cannot make exactly one match (use anyOf, or tell them apart "
                    "by type or by a const/enum property)",
                )
        return {
            "anyOf": [
                self.node(alternative, f"{pointer}/{keyword}/{index}")
                for index, alternative in enumerate(alternatives)
            ]
        }

    def _constants(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        from jsonschema import Draft202012Validator  # ~80 ms to import: only when needed

        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        if "const" in schema and "enum" in schema:
            allowed = {json_key(v) for v in schema["enum"]}
            values = [v for v in values if json_key(v) in allowed]
        others = {k: v for k, v in schema.items() if k in assertions(schema)}
        others.pop("const", None)
        others.pop("enum", None)
        if others:
            for keyword in ("$ref", "pattern"):  # a user's regex never runs in Python
                if contains_key(others, keyword):
                    reason = f"not supported beside keywords that use {keyword}"
                    raise self.fail(pointer, "enum", reason)
            validator = Draft202012Validator(
                others, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            values = [v for v in values if validator.is_valid(v)]
        keyword = "const" if "const" in schema else "enum"
        if not values:
            raise self.fail(pointer, keyword, "no value satisfies the schema's other keywords")
        return {"const": values[0]} if len(values) == 1 else {"enum": values}

    def _check_cycles(self) -> None:
        """Refuse a definition reaching itself without an object or array in between
        (llama.cpp rejects a left-recursive grammar)."""
        state: dict[str, int] = {}

        def visit(key: str) -> None:
            state[key] = 1
            for target in transparent_refs(self.defs[key]):
                if state.get(target) == 1:
                    pointer = next(p for p, k in self.def_keys.items() if k == target)
                    raise self.fail(
                        pointer,
                        "$ref",
                        "not supported: it refers to itself with no object or array in between",
                    )
                if target not in state:
                    visit(target)
            state[key] = 2

        for key in self.defs:
            if key not in state:
                visit(key)

    # ---- one type ------------------------------------------------------------------

    def _typed(self, schema: dict[str, Any], kind: str, pointer: str) -> dict[str, Any]:
        if kind == "object":
            return self._object(schema, pointer)
        if kind == "array":
            return self._array(schema, pointer)
        if kind == "string":
            return self._string(schema, pointer)
        if kind in ("integer", "number"):
            return self._number(schema, kind, pointer)
        if kind not in ALL_TYPES:
            raise self.fail(pointer, "type", f"unknown type {kind!r}")
        return {"type": kind}

    def _object(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        refuse_keywords(self.where, schema, pointer, OBJECT_UNSUPPORTED)
        properties: dict[str, Any] = schema.get("properties", {})
        required = list(dict.fromkeys(schema.get("required", [])))
        for name in required:
            if name not in properties:
                raise self.fail(f"{pointer}/required", "required", f"{name!r} is not in properties")
        extra = schema.get("additionalProperties", True)
        closed = bool(properties) or extra is False
        maximum = len(properties) if closed else math.inf
        if schema.get("minProperties", 0) > len(required):
            raise self.fail(pointer, "minProperties", "not supported above the required count")
        if schema.get("maxProperties", math.inf) < maximum:
            raise self.fail(pointer, "maxProperties", "not supported below the properties listed")
        if not closed and extra is not True:
            values = self.node(extra, f"{pointer}/additionalProperties")
            return {"type": "object", "additionalProperties": values}
        if not closed:
            return {"type": "object"}
        normalized = {
            name: self.node(sub, f"{pointer}/properties/{escape_pointer(name)}")
            for name, sub in properties.items()
        }
        return {"type": "object", "properties": normalized, "required": required}

    def _array(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        refuse_keywords(self.where, schema, pointer, ARRAY_UNSUPPORTED)
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        if low > MAX_REPEAT:
            raise self.fail(pointer, "minItems", f"not supported above {MAX_REPEAT}")
        high = None if high is None else min(high, MAX_REPEAT)
        if high is not None and high < low:
            raise self.fail(pointer, "maxItems", "below minItems: nothing satisfies it")
        unique = schema.get("uniqueItems") is True
        key = "prefixItems" if "prefixItems" in schema else "items"
        if isinstance(schema.get(key), list):
            return self._tuple(schema[key], key, low, high, unique, pointer)
        if unique and (high is None or high > 1):
            raise self.fail(
                pointer, "uniqueItems", "not supported: the grammar cannot keep items distinct"
            )
        out: dict[str, Any] = {"type": "array"}
        out["items"] = self.node(schema.get("items", True), f"{pointer}/items")
        if low:
            out["minItems"] = low
        if high is not None:
            out["maxItems"] = high
        return out

    def _tuple(
        self, items: list[Any], key: str, low: int, high: int | None, unique: bool, pointer: str
    ) -> dict[str, Any]:
        if low > len(items):
            raise self.fail(pointer, "minItems", f"not supported above the {len(items)} in {key}")
        items = items if high is None else items[:high]
        if unique and len(items) > 1:
            raise self.fail(
                pointer, "uniqueItems", "not supported: the grammar cannot keep items distinct"
            )
        if not items:
            return {GBNF_KEY: '"[" space "]" space'}
        normalized = [self.node(s, f"{pointer}/{key}/{i}") for i, s in enumerate(items)]
        return {"type": "array", "items": normalized}

    def _string(self, schema: dict[str, Any], pointer: str) -> dict[str, Any]:
        lengths = [k for k in ("minLength", "maxLength") if k in schema]
        shaped = [k for k in ("pattern", "format") if k in schema]
        if len(shaped) > 1 or (shaped and lengths):
            second = (shaped + lengths)[1]
            raise self.fail(pointer, second, f"not supported together with {shaped[0]}")
        if "pattern" in schema:
            try:
                return {GBNF_KEY: pattern_string(schema["pattern"])}
            except PatternError as exc:
                raise self.fail(pointer, "pattern", f"not supported: {exc}") from exc
        if "format" in schema:
            expression = STRING_FORMATS.get(schema["format"])
            if expression is None:
                known = ", ".join(STRING_FORMATS)
                reason = f"not supported: {schema['format']!r} (known: {known})"
                raise self.fail(pointer, "format", reason)
            return {GBNF_KEY: json_string(expression)}
        out: dict[str, Any] = {"type": "string"}
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if low > MAX_STRING_CHARS:
            raise self.fail(pointer, "minLength", f"not supported above {MAX_STRING_CHARS}")
        if high is not None and high < low:
            raise self.fail(pointer, "maxLength", "below minLength: nothing satisfies it")
        if low:
            out["minLength"] = low
        if high is not None or low:
            out["maxLength"] = min(high if high is not None else MAX_STRING_CHARS, MAX_STRING_CHARS)
        return out

    def _number(self, schema: dict[str, Any], kind: str, pointer: str) -> dict[str, Any]:
        step = schema.get("multipleOf")
        if step is not None and not (kind == "integer" and step == 1):
            raise self.fail(
                pointer, "multipleOf", "not supported: the grammar cannot enforce multiples"
            )
        bounds = [k for k in BOUND_KEYS if k in schema]
        if not bounds:
            return {"type": kind}
        if kind == "number":
            raise self.fail(
                pointer, bounds[0], "not supported on a number (the grammar bounds integers only)"
            )
        low, high = integer_bounds(schema)
        limit = 10**16 - 1
        if (low is not None and low > limit) or (high is not None and high < -limit):
            raise self.fail(pointer, bounds[0], "not supported beyond 16-digit integers")
        if low is not None and high is not None and low > high:
            raise self.fail(pointer, bounds[0], "no integer lies within the bounds")
        return {GBNF_KEY: integer_range(low, high)}
