"""GBNF text for what a JSON-schema converter leaves out: literals, integer ranges, string
formats and regular-expression patterns, each written so llama.cpp's grammar parser accepts
it and every text it allows is valid JSON that satisfies the keyword.

The pieces are grammar *expressions* (no rule names), used inline by ``formats.structured``
and by the tool-call grammars.  A JSON string's content is matched in its encoded form: a
character JSON must escape (``"``, ``\\``, control characters) is matched as its escape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

# llama.cpp refuses a repetition whose rules times its count exceeds 2000 (and silently
# drops a maximum above 2000): every bound written here stays under this.
MAX_REPEAT = 1_000
_RULE_BUDGET = 1_500
_INT_DIGITS = 16  # the converter's integers have at most 16 digits; so do ours
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_JSON_UNSAFE = ((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))  # escaped inside a JSON string

Ranges = list[tuple[int, int]]


def literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    return '"' + "".join(_literal_char(ch) for ch in text) + '"'


def json_literal(value: object) -> str:
    """A GBNF literal matching ``value`` written as compact JSON (``json.dumps``)."""
    return literal(json.dumps(value, ensure_ascii=False))


def json_object(pairs: Sequence[tuple[str, str]]) -> str:
    """An expression for a JSON object with exactly these keys, in order: ``(key, value rule)``.

    Spacing follows the JSON-schema converter (``space`` is at most one blank)."""
    members = ' "," space '.join(
        f'{json_literal(key)} space ":" space {value}' for key, value in pairs
    )
    return f'"{{" space {members} "}}" space'


def _literal_char(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02X}"
    return ch


def _class_char(code: int) -> str:
    """One end of a character-class range, escaped unless it is a letter or digit."""
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


# ---- integers -------------------------------------------------------------------------


def integer_range(low: int | None, high: int | None) -> str:
    """An expression for the JSON integers in ``[low, high]`` (None: unbounded on that side,
    up to 16 digits), followed by ``space``.  The caller checks ``low <= high``."""
    limit = 10**_INT_DIGITS - 1
    low = -limit if low is None else max(low, -limit)
    high = limit if high is None else min(high, limit)
    alternatives: list[str] = []
    if low < 0:
        negative = _natural_range(max(-high, 1) if high < 0 else 1, -low)
        alternatives.append(f'"-" ({" | ".join(negative)})')
    if high >= 0:
        alternatives.extend(_natural_range(max(low, 0), high))
    return f"({' | '.join(alternatives)}) space"


def _natural_range(low: int, high: int) -> list[str]:
    """Alternatives matching the decimal numbers ``low..high`` (no leading zeros)."""
    out: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        start, end = max(low, first), min(high, 10**digits - 1)
        if start <= end:
            out.extend(_same_length(str(start), str(end)))
    return out


def _same_length(low: str, high: str) -> list[str]:
    """Alternatives for the digit strings ``low..high`` of one length."""
    rest = len(low) - 1
    tail = f" [0-9]{{{rest}}}" if rest else ""
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [f"[{low[0]}-{high[0]}]{tail}"]
    if low[0] == high[0]:
        return [f'"{low[0]}" ({" | ".join(_same_length(low[1:], high[1:]))})']
    out = [f'"{low[0]}" ({" | ".join(_same_length(low[1:], "9" * rest))})']
    if int(low[0]) + 1 <= int(high[0]) - 1:
        out.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}]{tail}")
    out.append(f'"{high[0]}" ({" | ".join(_same_length("0" * rest, high[1:]))})')
    return out


# ---- string formats -------------------------------------------------------------------

_DAY_31 = '("0" [1-9] | [12] [0-9] | "3" [01])'
_DAY_30 = '("0" [1-9] | [12] [0-9] | "30")'
_DAY_28 = '("0" [1-9] | "1" [0-9] | "2" [0-8])'  # 29 February is left out: no leap years
_DATE = (
    f'[12] [0-9]{{3}} "-" (("0" [13578] | "1" [02]) "-" {_DAY_31} '
    f'| ("0" [469] | "11") "-" {_DAY_30} | "02-" {_DAY_28})'
)
_TIME = (
    '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? '
    '("Z" | [+\\-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])'
)
_HEX = "[0-9a-fA-F]"
_UUID = ' "-" '.join(f"{_HEX}{{{n}}}" for n in (8, 4, 4, 4, 12))

STRING_FORMATS: dict[str, str] = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f'{_DATE} "T" {_TIME}',
    "uuid": _UUID,
}


def json_string(content: str) -> str:
    """A JSON string (with its quotes and trailing ``space``) whose content is ``content``."""
    return f'"\\"" {content} "\\"" space'


# ---- character sets -------------------------------------------------------------------


def _normalize(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    start = 0
    for low, high in _normalize([*ranges, _SURROGATES]):
        if low > start:
            out.append((start, low - 1))
        start = max(start, high + 1)
    if start <= _MAX_CODE_POINT:
        out.append((start, _MAX_CODE_POINT))
    return out


def _intersect(ranges: Ranges, other: Ranges) -> Ranges:
    return _complement(_complement(ranges) + _complement(other))


def char_set(ranges: Ranges) -> str | None:
    """An expression for one character of ``ranges`` inside a JSON string (escaped where
    JSON needs it), or None when the set is empty."""
    ranges = _normalize(ranges)
    safe = _intersect(ranges, _complement(list(_JSON_UNSAFE)))
    parts: list[str] = []
    if safe:
        items = "".join(
            _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
            for low, high in safe
        )
        parts.append(f"[{items}]")
    for low, high in _intersect(ranges, list(_JSON_UNSAFE)):
        parts.extend(literal(json.dumps(chr(code))[1:-1]) for code in range(low, high + 1))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else f"({' | '.join(parts)})"


def json_char(ch: str) -> str:
    """A literal for one character inside a JSON string, in its JSON-encoded form."""
    return literal(json.dumps(ch, ensure_ascii=False)[1:-1])


# ---- regular expressions --------------------------------------------------------------

_DIGIT: Ranges = [(0x30, 0x39)]
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680),
                  (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
                  (0x3000, 0x3000), (0xFEFF, 0xFEFF)]  # fmt: skip
_LINE_ENDS: Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_CLASS_ESCAPES: dict[str, Ranges] = {
    "d": _DIGIT,
    "D": _complement(_DIGIT),
    "w": _WORD,
    "W": _complement(_WORD),
    "s": _SPACE,
    "S": _complement(_SPACE),
}
_CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "v": "\v", "f": "\f", "0": "\0"}


class PatternError(ValueError):
    """A regular expression the grammar cannot express (the caller names the keyword)."""


def pattern_string(pattern: str) -> str:
    """An expression for a JSON string (quotes and ``space`` included) that the ECMAScript
    regular expression ``pattern`` matches (a search, as JSON Schema's ``pattern`` is).

    Raises ``PatternError`` for lookarounds, back-references, word boundaries, anchors
    inside the pattern, Unicode property classes and repetitions past the bounds."""
    body = pattern
    anchored_start = body.startswith("^")
    anchored_end = body.endswith("$") and not _escaped_at(body, len(body) - 1)
    body = body[1 if anchored_start else 0 : len(body) - 1 if anchored_end else len(body)]
    parser = _PatternParser(body)
    expression = parser.alternation()
    if parser.pos != len(body):
        raise PatternError(f"unbalanced ')' at offset {parser.pos}")
    anything = f"{char_set(_complement(list(_JSON_UNSAFE)))}*"  # text around an unanchored match
    head = "" if anchored_start else anything + " "
    tail = "" if anchored_end else " " + anything
    return json_string(f"{head}({expression.text}){tail}")


def _escaped_at(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


@dataclass(frozen=True)
class _Expr:
    """A pattern piece as GBNF: its text, the rules llama.cpp synthesizes for it, and
    whether it can match the empty string."""

    text: str
    cost: int = 0
    nullable: bool = False


_EMPTY = _Expr('""', 0, True)


class _PatternParser:
    """Recursive descent over an ECMAScript pattern (without its anchors)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else ""

    def alternation(self) -> _Expr:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        if len(branches) == 1:
            return branches[0]
        return _Expr(
            "(" + " | ".join(b.text for b in branches) + ")",
            sum(b.cost for b in branches) + 1,
            any(b.nullable for b in branches),
        )

    def sequence(self) -> _Expr:
        items: list[_Expr] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        if not items:
            return _EMPTY
        return _Expr(
            " ".join(i.text for i in items),
            sum(i.cost for i in items),
            all(i.nullable for i in items),
        )

    def atom(self) -> _Expr:
        ch = self.peek()
        self.pos += 1
        if ch == "(":
            self._group_prefix()
            inner = self.alternation()
            if self.peek() != ")":
                raise PatternError("unbalanced '('")
            self.pos += 1
            return _Expr(f"({inner.text})", inner.cost + 1, inner.nullable)
        if ch == "[":
            return _Expr(self._set(self._class()))
        if ch == ".":
            return _Expr(self._set(_complement(_LINE_ENDS)))
        if ch == "\\":
            return _Expr(self._escape())
        if ch in "^$":
            raise PatternError(f"an anchor {ch!r} inside the pattern")
        if ch in "*+?" or (ch == "{" and self._quantifier_at(self.pos - 1)):
            raise PatternError(f"nothing to repeat at offset {self.pos - 1}")
        return _Expr(json_char(ch))

    def _group_prefix(self) -> None:
        if self.source.startswith("?:", self.pos):
            self.pos += 2
        elif (
            self.source.startswith("?<", self.pos)
            and self.source[self.pos + 2 : self.pos + 3] not in "=!"
        ):
            end = self.source.find(">", self.pos)
            if end == -1:
                raise PatternError("an unterminated group name")
            self.pos = end + 1
        elif self.peek() == "?":
            raise PatternError("lookaround assertions")

    def _set(self, ranges: Ranges) -> str:
        expression = char_set(ranges)
        if expression is None:
            raise PatternError("a character class that matches nothing")
        return expression

    def _escape(self) -> str:
        ch = self.peek()
        self.pos += 1
        if ch in _CLASS_ESCAPES:
            return self._set(_CLASS_ESCAPES[ch])
        return json_char(self._escaped_char(ch))

    def _escaped_char(self, ch: str) -> str:
        if ch == "":
            raise PatternError("a trailing backslash")
        if ch in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[ch]
        if ch in "xu":
            width = 2 if ch == "x" else 4
            digits = self.source[self.pos : self.pos + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise PatternError(f"a malformed \\{ch} escape")
            self.pos += width
            return chr(int(digits, 16))
        if ch.isalnum():
            raise PatternError(f"the escape \\{ch} (word boundaries, back-references, classes)")
        return ch

    def _class(self) -> Ranges:
        negated = self.peek() == "^"
        self.pos += negated
        ranges: Ranges = []
        first = True
        while True:
            ch = self.peek()
            if ch == "":
                raise PatternError("an unterminated character class")
            if ch == "]" and not first:
                self.pos += 1
                break
            first = False
            low = self._class_atom(ranges)
            if low is None:
                continue
            if self.peek() == "-" and self.source[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                high = self._class_atom(ranges)
                if high is None or high < low:
                    raise PatternError("a character class range out of order")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        return _complement(ranges) if negated else _normalize(ranges)

    def _class_atom(self, ranges: Ranges) -> int | None:
        """One class member's code point; a class escape (\\d…) is added and gives None."""
        ch = self.peek()
        self.pos += 1
        if ch != "\\":
            return ord(ch)
        escape = self.peek()
        self.pos += 1
        if escape in _CLASS_ESCAPES:
            ranges.extend(_CLASS_ESCAPES[escape])
            return None
        if escape == "b":
            return 0x08
        return ord(self._escaped_char(escape))

    def _quantifier_at(self, index: int) -> tuple[int, int | None, int] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` at ``index``: (min, max, length), else None."""
        end = self.source.find("}", index)
        if end == -1:
            return None
        low, comma, high = self.source[index + 1 : end].partition(",")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        maximum = int(high) if high else (None if comma else int(low))
        return int(low), maximum, end + 1 - index

    def quantified(self, atom: _Expr) -> _Expr:
        ch = self.peek()
        bounds: tuple[int, int | None] | None = None
        if ch in ("*", "+", "?"):
            bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
            self.pos += 1
        elif ch == "{" and (found := self._quantifier_at(self.pos)):
            bounds = found[0], found[1]
            self.pos += found[2]
        if bounds is None:
            return atom
        if self.peek() == "?":  # lazy: the same set of strings
            self.pos += 1
        return _repeat(atom, *bounds)


def _repeat(atom: _Expr, low: int, high: int | None) -> _Expr:
    if high is not None and high < low:
        raise PatternError(f"a repetition {{{low},{high}}} out of order")
    if max(low, high or 0) > MAX_REPEAT:
        raise PatternError(f"a repetition over {MAX_REPEAT}")
    if high is None and atom.nullable:
        raise PatternError("an unbounded repetition of something that can be empty")
    count = high if high is not None else max(low, 1)
    if (atom.cost + 1) * count > _RULE_BUDGET:
        raise PatternError("nested repetitions that are too large")
    operator = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
    if operator is None:
        operator = f"{{{low}}}" if low == high else f"{{{low},{'' if high is None else high}}}"
    return _Expr(atom.text + operator, atom.cost + count, atom.nullable or low == 0)
