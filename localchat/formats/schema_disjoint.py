"""When ``oneOf`` alternatives are provably disjoint, so that the grammar's "any of them"
still means "exactly one of them": told apart by type, by their constant values, or by a
required property whose const/enum values differ (pydantic's discriminated unions)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from localchat.errors import InvalidRequest
from localchat.formats.schema_rules import json_key, resolve_pointer


def overlapping_pair(alternatives: list[Any], root: Mapping[str, Any]) -> tuple[int, int] | None:
    """Two alternatives that may both match one value (None: provably disjoint)."""
    shapes = [_shape(_deref(alternative, root), root) for alternative in alternatives]
    for (i, a), (j, b) in itertools.combinations(enumerate(shapes), 2):
        if not _disjoint(a, b):
            return i, j
    return None


def _deref(schema: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        try:
            return resolve_pointer(root, schema["$ref"], "", "")[1]
        except InvalidRequest:
            return schema
    return schema


class _Shape:
    """What tells an alternative apart: its types, its values, its discriminators."""

    def __init__(self) -> None:
        self.types: set[str] | None = None
        self.values: list[Any] | None = None
        self.tags: dict[str, list[Any]] = {}  # required property -> its possible values


def _shape(schema: Any, root: Mapping[str, Any]) -> _Shape:
    shape = _Shape()
    if not isinstance(schema, dict):
        return shape
    for part in schema.get("allOf", []):
        inner = _shape(_deref(part, root), root)
        shape.types = inner.types if shape.types is None else shape.types
        shape.values = inner.values if shape.values is None else shape.values
        shape.tags.update(inner.tags)
    if isinstance(schema.get("type"), str | list):
        kind = schema["type"]
        shape.types = {kind} if isinstance(kind, str) else set(kind)
    if "const" in schema or "enum" in schema:
        shape.values = [schema["const"]] if "const" in schema else list(schema["enum"])
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        sub = _deref(sub, root)
        if name in required and isinstance(sub, dict) and ("const" in sub or "enum" in sub):
            shape.tags[name] = [sub["const"]] if "const" in sub else list(sub["enum"])
    return shape


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", type(None): "null", list: "array", dict: "object"}
    return names.get(type(value), "object")


def _types_overlap(a: set[str], b: set[str]) -> bool:
    widen = {"integer": {"integer", "number"}, "number": {"integer", "number"}}
    return any(widen.get(t, {t}) & b for t in a)


def _disjoint(a: _Shape, b: _Shape) -> bool:
    if a.types is not None and b.types is not None and not _types_overlap(a.types, b.types):
        return True
    if a.values is not None and b.values is not None:
        return not {json_key(v) for v in a.values} & {json_key(v) for v in b.values}
    for values, other in ((a.values, b.types), (b.values, a.types)):
        if (
            values is not None
            and other is not None
            and not _types_overlap({_json_type(v) for v in values}, other)
        ):
            return True
    for name in a.tags.keys() & b.tags.keys():
        if not {json_key(v) for v in a.tags[name]} & {json_key(v) for v in b.tags[name]}:
            return True
    return False
