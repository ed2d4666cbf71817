"""ECMAScript regular expressions (JSON Schema's ``pattern``) as GBNF for a JSON string.

The grammar matches the string in its encoded form (characters JSON must escape are
matched as their escapes), so every string it allows decodes to one the pattern matches.
Lookarounds, back-references, word boundaries, anchors inside the pattern and Unicode
property classes are refused (``PatternError``); repetitions stay under llama.cpp's bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.formats.gbnf import (
    JSON_UNSAFE,
    MAX_REPEAT,
    Ranges,
    char_set,
    complement,
    json_char,
    json_string,
    normalize,
)

_RULE_BUDGET = 1_500  # rules a repetition may synthesize (llama.cpp refuses past 2000)

_DIGIT: Ranges = [(0x30, 0x39)]
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680),
                  (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
                  (0x3000, 0x3000), (0xFEFF, 0xFEFF)]  # fmt: skip
_LINE_ENDS: Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_CLASS_ESCAPES: dict[str, Ranges] = {
    "d": _DIGIT,
    "D": complement(_DIGIT),
    "w": _WORD,
    "W": complement(_WORD),
    "s": _SPACE,
    "S": complement(_SPACE),
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
    anything = f"{char_set(complement(list(JSON_UNSAFE)))}*"  # text around an unanchored match
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
            return _Expr(self._set(complement(_LINE_ENDS)))
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
        return complement(ranges) if negated else normalize(ranges)

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
