"""What ``formats.structured`` knows about JSON Schema: which keywords constrain what,
which the grammar cannot enforce, how allOf parts combine and when oneOf alternatives
are disjoint; plus the bounded checks a schema passes before anything recursive runs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel

from localchat.errors import InvalidRequest

SchemaLike = Mapping[str, Any] | type[BaseModel]

MAX_SCHEMA_NODES = 10_000  # objects, arrays and scalars in the schema document
MAX_SCHEMA_DEPTH = 40
MAX_SCHEMA_CHARS = 1_000_000  # all strings (keys and values) together
MAX_MESSAGE_CHARS = 200

ALL_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ANY_VALUE: dict[str, Any] = {"type": ["object", "array", "string", "number", "boolean", "null"]}

GENERAL = frozenset({"type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf"})
OBJECT = frozenset(
    {"properties", "required", "additionalProperties", "minProperties", "maxProperties",
     "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
     "dependencies", "unevaluatedProperties"}
)  # fmt: skip
ARRAY = frozenset(
    {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains",
     "maxContains", "additionalItems", "unevaluatedItems"}
)  # fmt: skip
STRING = frozenset({"minLength", "maxLength", "pattern", "format"})
NUMBER = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
TYPE_KEYWORDS = (("object", OBJECT), ("array", ARRAY), ("string", STRING), ("number", NUMBER))

_CANNOT = "not supported: the grammar cannot enforce "
ANYWHERE_UNSUPPORTED = {
    "not": _CANNOT + "a negated schema",
    "if": _CANNOT + "conditional schemas",
    "then": _CANNOT + "conditional schemas",
    "else": _CANNOT + "conditional schemas",
    "$dynamicRef": _CANNOT + "dynamic references",
    "$recursiveRef": _CANNOT + "dynamic references",
}
OBJECT_UNSUPPORTED = {
    "patternProperties": _CANNOT + "properties chosen by a pattern",
    "propertyNames": _CANNOT + "rules on property names",
    "dependentRequired": _CANNOT + "properties that depend on each other",
    "dependentSchemas": _CANNOT + "properties that depend on each other",
    "dependencies": _CANNOT + "properties that depend on each other",
    "unevaluatedProperties": _CANNOT + "unevaluatedProperties",
}
ARRAY_UNSUPPORTED = {
    "contains": _CANNOT + "an item that must appear somewhere",
    "minContains": _CANNOT + "an item that must appear somewhere",
    "maxContains": _CANNOT + "an item that must appear somewhere",
    "unevaluatedItems": _CANNOT + "unevaluatedItems",
}
KNOWN = GENERAL | OBJECT | ARRAY | STRING | NUMBER | frozenset(ANYWHERE_UNSUPPORTED)
_MINIMA = frozenset({"minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"})
_MAXIMA = frozenset({"maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"})
_SUBSCHEMAS = frozenset({"items", "additionalProperties"})


class Unsatisfiable(Exception):
    """allOf parts that cannot be combined (``structured`` names the place)."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(reason)
        self.keyword = keyword
        self.reason = reason


_HINT = "drop it or restate the schema: every keyword accepted is enforced"


def refuse(
    where: str, pointer: str, keyword: str, reason: str, hint: str = _HINT
) -> InvalidRequest:
    text = reason if len(reason) <= MAX_MESSAGE_CHARS else reason[: MAX_MESSAGE_CHARS - 1] + "…"
    return InvalidRequest(
        f"{where}: {keyword!r} at {pointer or '/'}: {text}".replace("\n", " "), hint=hint
    )


def refuse_keywords(
    where: str,
    schema: Mapping[str, Any],
    pointer: str,
    unsupported: Mapping[str, str] = ANYWHERE_UNSUPPORTED,
) -> None:
    """Refuse the first keyword of ``unsupported`` that ``schema`` uses."""
    for keyword, reason in unsupported.items():
        if keyword in schema:
            raise refuse(where, pointer, keyword, reason)


def assertions(schema: Mapping[str, Any]) -> list[str]:
    """The keywords of ``schema`` that constrain values (the rest are annotations)."""
    return [key for key in schema if key in KNOWN]


def contains_key(value: Any, key: str) -> bool:
    """Whether ``key`` is a key of any object inside ``value`` (iterative: no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if key in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_key(value: Any) -> str:
    """A key equal for JSON-equal values (1 and 1.0 alike; true and 1 apart)."""

    def canonical(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer():
            return int(item)
        if isinstance(item, list):
            return [canonical(x) for x in item]
        if isinstance(item, dict):
            return {k: canonical(v) for k, v in item.items()}
        return item

    return json.dumps(canonical(value), sort_keys=True)


def escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def schema_dict(schema: SchemaLike, where: str) -> dict[str, Any]:
    """A pydantic model class's JSON schema, or the mapping itself as a dict."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    if not isinstance(schema, Mapping):
        raise InvalidRequest(f"{where}: a JSON schema must be a JSON object")
    return dict(schema)


def check_document(document: Mapping[str, Any], where: str) -> None:
    """Bounded size and depth (no recursion), then the JSON Schema meta-schema."""
    from jsonschema import exceptions, validators  # ~80 ms to import: only when needed

    _measure(document, where)
    cls = validators.validator_for(document, default=validators.Draft202012Validator)
    try:
        cls.check_schema(document)
    except exceptions.SchemaError as exc:
        path = [str(p) for p in exc.path]
        keyword = path.pop() if path else str(exc.validator)
        pointer = "".join(f"/{escape_pointer(p)}" for p in path)
        reason = f"not a valid schema: {exc.message}"
        raise refuse(where, pointer, keyword, reason, "see json-schema.org") from None
    except RecursionError as exc:  # a pathological pattern or reference in the check
        raise InvalidRequest(f"{where}: the schema is too deeply nested") from exc


def _measure(document: Any, where: str) -> None:
    nodes = chars = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES or depth > MAX_SCHEMA_DEPTH or chars > MAX_SCHEMA_CHARS:
            raise InvalidRequest(
                f"{where}: the schema is too large or too deeply nested (limits: {MAX_SCHEMA_NODES}"
                f" values, depth {MAX_SCHEMA_DEPTH}, {MAX_SCHEMA_CHARS} characters)"
            )
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidRequest(f"{where}: schema keys must be strings, not {key!r}")
                chars += len(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            chars += len(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"{where}: {value} is not a JSON number")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidRequest(f"{where}: {type(value).__name__} is not a JSON value")


def resolve_pointer(root: Mapping[str, Any], ref: Any, where: str, pointer: str) -> tuple[str, Any]:
    """A local ``$ref``'s canonical pointer and target."""
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise refuse(
            where,
            pointer,
            "$ref",
            f"not supported: {ref!r} (only references inside the schema, #/…)",
        )
    target: Any = root
    segments = [] if ref == "#" else ref[2:].split("/")
    path = []
    for raw in segments:
        segment = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and segment in target:
            target = target[segment]
        elif isinstance(target, list) and segment.isdigit() and int(segment) < len(target):
            target = target[int(segment)]
        else:
            raise refuse(where, pointer, "$ref", f"{ref!r} does not resolve")
        path.append(escape_pointer(segment))
    return "".join(f"/{p}" for p in path), target


def value_types(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types a schema's values may have: its ``type``, or inferred from the
    keywords that constrain one type (a keyword for one type says nothing of the others,
    so the grammar restricting to that type only narrows what is allowed)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return list(dict.fromkeys(kind))
    inferred = [name for name, group in TYPE_KEYWORDS if group & set(schema)]
    return inferred or list(ANY_VALUE["type"])


# ---- bounds and references ----------------------------------------------------------


def integer_bounds(schema: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The integers a schema's bounds allow: (lowest, highest), None where unbounded."""
    lows: list[int] = []
    highs: list[int] = []
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    exclusive_min, exclusive_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if minimum is not None:  # draft 4: exclusiveMinimum is a flag on minimum
        lows.append(math.floor(minimum) + 1 if exclusive_min is True else math.ceil(minimum))
    if maximum is not None:
        highs.append(math.ceil(maximum) - 1 if exclusive_max is True else math.floor(maximum))
    if not isinstance(exclusive_min, bool) and exclusive_min is not None:
        lows.append(math.floor(exclusive_min) + 1)
    if not isinstance(exclusive_max, bool) and exclusive_max is not None:
        highs.append(math.ceil(exclusive_max) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def transparent_refs(node: Mapping[str, Any]) -> set[str]:
    """The definitions a node reaches before matching any character of its own."""
    if "$ref" in node:
        return {str(node["$ref"]).rsplit("/", 1)[-1]}
    found: set[str] = set()
    for alternative in node.get("anyOf", []):
        found |= transparent_refs(alternative)
    return found


# ---- allOf ----------------------------------------------------------------------------


def merge_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema equivalent to all ``parts`` together (``$ref``/``allOf`` already
    inlined), or ``Unsatisfiable`` where they cannot be combined."""
    merged: dict[str, Any] = {}
    closed: list[set[str]] = []  # properties of parts that forbid or constrain others
    for part in parts:
        if "additionalProperties" in part and part["additionalProperties"] is not True:
            closed.append(set(part.get("properties", {})))
        for key in assertions(part):
            value = part[key]
            merged[key] = _merge_value(key, merged[key], value) if key in merged else value
    if closed and "properties" in merged:
        allowed = set.intersection(*closed)
        for name in merged.get("required", []):
            if name not in allowed:
                raise Unsatisfiable(
                    "additionalProperties", f"{name!r} is required by one part, excluded by another"
                )
        merged["properties"] = {k: v for k, v in merged["properties"].items() if k in allowed}
    return merged


def _merge_value(key: str, first: Any, second: Any) -> Any:
    if first == second:
        return first
    if key == "type":
        return _common_types(first, second)
    if key == "required":
        return list(dict.fromkeys([*first, *second]))
    if key == "properties":
        out = dict(first)
        for name, schema in second.items():
            out[name] = {"allOf": [out[name], schema]} if name in out else schema
        return out
    if key == "enum":
        others = {json_key(value) for value in second}
        common = [value for value in first if json_key(value) in others]
        if not common:
            raise Unsatisfiable("enum", "allOf parts share no enum value")
        return common
    if key in _MINIMA | _MAXIMA and not isinstance(first, bool) and not isinstance(second, bool):
        return max(first, second) if key in _MINIMA else min(first, second)
    if key in _SUBSCHEMAS and isinstance(first, dict | bool) and isinstance(second, dict | bool):
        if first is False or second is False:
            return False
        return {"allOf": [first, second]}
    raise Unsatisfiable(key, "not supported: allOf parts set it differently")


def _common_types(first: Any, second: Any) -> Any:
    a = {first} if isinstance(first, str) else set(first)
    b = {second} if isinstance(second, str) else set(second)
    common = a & b
    if "integer" in a | b and "number" in a | b:
        common |= {"integer"} & (a | b)
    if not common:
        raise Unsatisfiable("type", "allOf parts allow no common type")
    ordered = [t for t in ALL_TYPES if t in common]
    return ordered[0] if len(ordered) == 1 else ordered
