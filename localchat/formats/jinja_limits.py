"""Time and memory bounds for untrusted Jinja chat templates.

Jinja's sandbox stops templates from reaching Python internals but not from
spending resources: ``'x' * 10**9``, ``10 ** 10 ** 8``, ``center(10**9)``,
``tojson(indent=10**8)``, strings doubled through a namespace and nested
``range`` loops that print nothing each hang or take gigabytes.  This module
bounds every place a template can make work:

* operators (``+ - * / // % **``) and ``~`` run through ``checked_binop`` and
  ``checked_concat``, which refuse before computing a result above the limits
  (intercepting an operator also stops Jinja folding it at compile time);
* every call, filter and ``for`` loop is charged to a per-render ``Budget``
  (work units and a wall-clock deadline) and checks its arguments;
* every value about to be printed is weighed first (``check_output``).

A breach raises ``TemplateResourceError``; ``formats.jinja`` turns it into the
template error the user sees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MAX_VALUE_CHARS = 4_000_000  # one string/list/dict, counted as characters + items
MAX_INT_ARGUMENT = 100_000  # widths, indents, counts passed to calls and filters
MAX_INT_BITS = 16_384  # integers a template computes (2**16384 has ~4900 digits)
MAX_WORK_UNITS = 50_000_000  # characters produced + loop iterations, per render
RENDER_SECONDS = 3.0  # wall-clock budget for compiling or rendering one template

_FORMAT_WIDTH = re.compile(r"\d+")


class TemplateResourceError(Exception):
    """A template went past a time or size limit (internal; ``formats.jinja`` maps it)."""


class Budget:
    """Work units and a deadline for one compile or render."""

    def __init__(self, seconds: float | None = None, units: int = MAX_WORK_UNITS) -> None:
        self.seconds = RENDER_SECONDS if seconds is None else seconds
        self.deadline = time.monotonic() + self.seconds
        self.units_left = units

    def charge(self, units: int) -> None:
        self.units_left -= units
        if self.units_left < 0:
            raise TemplateResourceError("it does too much work")
        if time.monotonic() > self.deadline:
            raise TemplateResourceError(f"it ran past {self.seconds:g} s")


_budget: ContextVar[Budget | None] = ContextVar("localchat_template_budget", default=None)


@contextmanager
def budget(seconds: float | None = None) -> Iterator[Budget]:
    """Run a compile or render under a fresh ``Budget``."""
    current = Budget(seconds)
    token = _budget.set(current)
    try:
        yield current
    finally:
        _budget.reset(token)


def charge(units: int = 1) -> None:
    current = _budget.get()
    if current is not None:  # None: called outside a compile or render
        current.charge(units)


def weight(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """Characters + items in ``value``, counting shared references each time (stops past ``limit``).

    Shared references matter: ``[s, s]`` prints ``s`` twice.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        else:
            total += 1
    return total


def check_value(value: Any, what: str = "a value") -> Any:
    if weight(value) > MAX_VALUE_CHARS:
        raise TemplateResourceError(f"{what} over {MAX_VALUE_CHARS:,} characters")
    return value


def check_output(value: Any) -> Any:
    """Jinja's ``finalize``: weigh every printed value before it becomes a string."""
    charge(weight(value))
    return check_value(value, "it prints a value")


def check_arguments(args: Iterable[Any], kwargs: dict[str, Any]) -> None:
    """Refuse huge widths/counts and oversized values passed to a call or filter."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INT_ARGUMENT:
                raise TemplateResourceError(f"it passes {_short_int(value)} to a function")
        else:
            check_value(value, "it passes a value")


def check_format_string(text: str) -> None:
    """``'%1000000000s' % x`` and ``'{:>1000000000}'.format(x)`` would build huge strings."""
    for digits in _FORMAT_WIDTH.findall(text):
        if len(digits) > 6 or int(digits) > MAX_INT_ARGUMENT:
            raise TemplateResourceError("its format string asks for a huge width")


def checked_binop(operator: str, left: Any, right: Any, apply: Callable[[Any, Any], Any]) -> Any:
    """Compute ``left <operator> right`` only when the result stays within the limits."""
    if operator == "**":
        _check_power(left, right)
    elif operator == "*":
        _check_product(left, right)
    elif operator == "+":
        if not _is_number(left) or not _is_number(right):
            check_value([left, right], "it adds values")
    elif operator == "%" and isinstance(left, str):
        check_format_string(left)
    result = apply(left, right)
    charge(weight(result))
    return result


def checked_concat(parts: Iterable[Any]) -> str:
    """Jinja's ``~`` operator, refused before the joined string passes the limit."""
    texts = [str(check_value(part, "it joins a value")) for part in parts]
    size = sum(len(text) for text in texts)
    if size > MAX_VALUE_CHARS:
        raise TemplateResourceError(f"it joins strings over {MAX_VALUE_CHARS:,} characters")
    charge(size + 1)
    return "".join(texts)


def guard_iterable(value: Any) -> Iterator[Any]:
    """Wraps every ``for`` loop's iterable: each item is charged to the budget."""
    for item in value:
        charge(1)
        yield item


def guard_callable(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that checks its arguments and charges its result."""

    skip = 1 if getattr(function, "jinja_pass_arg", None) else 0  # context/environment first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            check_value(args[skip], "it filters a value")
        check_arguments(args[skip + 1 :], kwargs)
        result = function(*args, **kwargs)
        charge(weight(result) if isinstance(result, str | list | tuple | dict) else 1)
        return result

    for attribute in ("jinja_pass_arg", "__name__", "__doc__"):
        if hasattr(function, attribute):
            setattr(guarded, attribute, getattr(function, attribute))
    return guarded


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """Replacements for Jinja filters whose cost is not visible in their arguments."""
    import operator

    from jinja2 import pass_environment
    from jinja2.filters import do_format, make_attrgetter

    def format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
        check_format_string(str(value))
        return do_format(value, *args, **kwargs)

    @pass_environment
    def sum_filter(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if attribute is not None:
            iterable = map(make_attrgetter(environment, attribute), iterable)
        total = start
        for item in iterable:  # adding lists one by one is quadratic: charge every step
            total = checked_binop("+", total, item, operator.add)
        return total

    return {"format": format_filter, "sum": sum_filter}


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        if abs(base).bit_length() * exponent > MAX_INT_BITS:
            raise TemplateResourceError("it computes an integer too large to hold")
    elif _is_number(base) and _is_number(exponent) and abs(exponent) > MAX_INT_BITS:
        raise TemplateResourceError("it computes a power too large to hold")


def _check_product(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateResourceError("it computes an integer too large to hold")
        return
    for sequence, count in ((left, right), (right, left)):
        repeats = _is_int(count) and isinstance(sequence, str | list | tuple)
        if repeats and max(count, 0) * max(weight(sequence), 1) > MAX_VALUE_CHARS:
            raise TemplateResourceError(
                f"it repeats a value into more than {MAX_VALUE_CHARS:,} characters"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short_int(value: int) -> str:
    digits = len(str(abs(value))) if value.bit_length() < 10_000 else value.bit_length() // 3
    return str(value) if digits <= 12 else f"an integer of {digits} digits"
