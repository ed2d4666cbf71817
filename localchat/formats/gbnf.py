"""GBNF text for what a JSON-schema converter leaves out: literals, integer ranges, string
formats and character sets (regular expressions: ``formats.gbnf_pattern``), each written so
llama.cpp's grammar parser accepts it and every text it allows is valid JSON that satisfies
the keyword.

The pieces are grammar *expressions* (no rule names), used inline by ``formats.structured``
and by the tool-call grammars.  A JSON string's content is matched in its encoded form: a
character JSON must escape (``"``, ``\\``, control characters) is matched as its escape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# llama.cpp refuses a repetition whose rules times its count exceeds 2000 (and silently
# drops a maximum above 2000): every bound written here stays under this.
MAX_REPEAT = 1_000
_INT_DIGITS = 16  # the converter's integers have at most 16 digits; so do ours
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
JSON_UNSAFE = ((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))  # escaped inside a JSON string

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


def normalize(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    start = 0
    for low, high in normalize([*ranges, _SURROGATES]):
        if low > start:
            out.append((start, low - 1))
        start = max(start, high + 1)
    if start <= _MAX_CODE_POINT:
        out.append((start, _MAX_CODE_POINT))
    return out


def _intersect(ranges: Ranges, other: Ranges) -> Ranges:
    return complement(complement(ranges) + complement(other))


def char_set(ranges: Ranges) -> str | None:
    """An expression for one character of ``ranges`` inside a JSON string (escaped where
    JSON needs it), or None when the set is empty."""
    ranges = normalize(ranges)
    safe = _intersect(ranges, complement(list(JSON_UNSAFE)))
    parts: list[str] = []
    if safe:
        items = "".join(
            _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
            for low, high in safe
        )
        parts.append(f"[{items}]")
    for low, high in _intersect(ranges, list(JSON_UNSAFE)):
        parts.extend(literal(json.dumps(chr(code))[1:-1]) for code in range(low, high + 1))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else f"({' | '.join(parts)})"


def json_char(ch: str) -> str:
    """A literal for one character inside a JSON string, in its JSON-encoded form."""
    return literal(json.dumps(ch, ensure_ascii=False)[1:-1])
