"""JSON schemas as GBNF grammars, through llama-cpp-python's JSON-schema converter.

The converter (``llama_cpp.llama_grammar.SchemaConverter``) takes schemas that
``formats.structured`` has already checked and normalised: only keywords it enforces,
local ``#/$defs/…`` references, and ``x-localchat-gbnf`` nodes holding a ready expression
(integer ranges, string formats, patterns).  This subclass fixes what the converter gets
wrong for that input:

- a JSON string's characters exclude raw control characters and lone surrogate escapes
  (the stock rule lets a raw newline through, which is not JSON);
- each ``$ref`` gets a rule name of its own (the stock converter names it after the
  pointer's last segment, which can collide with a property's rule);
- ``minLength``/``maxLength`` and ``minItems``/``maxItems`` use GBNF's ``{m,n}``
  repetition instead of nesting one group per item;
- the grammar's size is bounded while it is built.

Importing ``llama_cpp`` loads the native library, so it happens on first use only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from localchat.errors import InvalidRequest

MAX_GRAMMAR_CHARS = 1_000_000
GBNF_KEY = "x-localchat-gbnf"  # a normalised node holding a ready GBNF expression

# One character inside a JSON string: no raw control characters, no "\uD800"-"\uDFFF".
_JSON_CHAR = (
    '[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" '
    "([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))"
)


class GrammarBuilder:
    """Collects rules from several schemas and hand-written expressions into one grammar.

    ``schema_rule(name, body, defs)`` converts one normalised schema and returns the name
    of its rule; ``rule(name, expression)`` adds a rule; ``grammar(root)`` is the text.
    All rules share the converter's ``space`` (at most one blank) and primitives.
    """

    def __init__(self) -> None:
        self._converter = _converter_class()(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )
        self._documents = 0

    def schema_rule(
        self, name: str, body: Mapping[str, Any], defs: Mapping[str, Any] | None = None
    ) -> str:
        """The rule matching ``body``; its ``#/$defs/KEY`` references point into ``defs``."""
        self._documents += 1
        document = {"$defs": dict(defs or {}), "body": dict(body)}
        resolved = self._converter.resolve_refs(document, f"doc{self._documents}")
        return str(self._converter.visit(resolved["body"], name))

    def rule(self, name: str, expression: str) -> str:
        return str(self._converter._add_rule(name, expression))

    def grammar(self, root: str) -> str:
        """The whole grammar, with ``root ::= root``-expression first."""
        self._converter._add_rule("root", root)
        text = str(self._converter.format_grammar())
        _check_size(len(text))
        return text


def json_schema_grammar(body: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> str:
    """The grammar (rule ``root``) for one normalised schema."""
    builder = GrammarBuilder()
    return builder.grammar(builder.schema_rule("value", body, defs))


def _check_size(chars: int) -> None:
    if chars > MAX_GRAMMAR_CHARS:
        raise InvalidRequest(
            f"the schema's grammar is too large ({chars} characters, limit {MAX_GRAMMAR_CHARS})",
            hint="simplify the schema: fewer enum values, properties or alternatives",
        )


@functools.cache
def _converter_class() -> type:
    # llama_cpp loads its native library on import: only once a grammar is wanted.
    from localchat.llamacpp._bindings import grammar_module as llama_grammar

    converter: Any = llama_grammar.SchemaConverter  # untyped upstream code
    rule_chars = llama_grammar.INVALID_RULE_CHARS_RE
    reserved_names = llama_grammar.RESERVED_NAMES
    builtin_rule = llama_grammar.BuiltinRule

    class BoundedConverter(converter):  # type: ignore[misc]
        """The stock converter with the fixes listed in this module's docstring."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._chars = 0
            self._ref_rules: dict[str, str] = {}

        def _add_rule(self, name: str, rule: str) -> str:
            self._chars += len(name) + len(rule)
            _check_size(self._chars)
            return str(super()._add_rule(name, rule))

        def _add_primitive(self, name: str, rule: Any) -> str:
            if name == "char":
                rule = builtin_rule(_JSON_CHAR, [])
            return str(super()._add_primitive(name, rule))

        def _resolve_ref(self, ref: str) -> str:
            known = self._ref_rules.get(ref)
            if known is not None:
                return known
            base = rule_chars.sub("-", ref.split("/")[-1]) or "ref"
            name = f"ref-{base}"
            suffix = 0
            while name in self._rules:
                suffix += 1
                name = f"ref-{base}{suffix}"
            self._rules[name] = '""'  # reserved while the target (maybe recursive) converts
            self._ref_rules[ref] = name
            self._rules[name] = self.visit(self._refs[ref], f"{name}-def")
            return name

        def visit(self, schema: Mapping[str, Any], name: str) -> str:
            rule_name = name + "-" if name in reserved_names else name or "root"
            if GBNF_KEY in schema:
                return self._add_rule(rule_name, str(schema[GBNF_KEY]))
            kind = schema.get("type")
            if kind == "string" and ("minLength" in schema or "maxLength" in schema):
                char = self._add_primitive("char", None)
                counts = _counts(schema.get("minLength", 0), schema.get("maxLength"))
                return self._add_rule(rule_name, f'"\\"" {char}{counts} "\\"" space')
            bounded = "minItems" in schema or "maxItems" in schema
            if kind == "array" and isinstance(schema.get("items"), dict) and bounded:
                return self._bounded_array(schema, name, rule_name)
            return str(super().visit(schema, name))

        def _bounded_array(self, schema: Mapping[str, Any], name: str, rule_name: str) -> str:
            item = self.visit(schema["items"], f"{name}{'-' if name else ''}item")
            low, high = schema.get("minItems", 0), schema.get("maxItems")
            if high == 0:
                return self._add_rule(rule_name, '"[" space "]" space')
            rest = _counts(max(low - 1, 0), None if high is None else high - 1)
            items = f'{item} ("," space {item}){rest}'
            body = items if low > 0 else f"({items})?"
            return self._add_rule(rule_name, f'"[" space {body} "]" space')

    return BoundedConverter


def _counts(low: int, high: int | None) -> str:
    """GBNF's repetition operator for ``low..high`` (None: unbounded)."""
    if high is None:
        return "*" if low == 0 else ("+" if low == 1 else f"{{{low},}}")
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"
