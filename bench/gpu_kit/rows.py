"""The GPU check's rows and verdict: pure functions, no GPU, no llama.cpp.

Each check returns rows: what was expected, what was measured, the tolerance, and
whether it held (``ok``: True, False, or None for a row that was skipped, with a note
saying why).  The verdict: any failed row is a mismatch (exit 1); a run where every
row was skipped checked nothing (exit 2); else exit 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_NOTHING_CHECKED = 2
MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    check: str  # the check it belongs to ("plan vs llama.cpp log", "OOM back-off", ...)
    name: str  # what this row compares ("GPU0 weights")
    expected: str
    measured: str
    tolerance: str
    ok: bool | None  # None: skipped (``note`` says why)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def skipped(check: str, name: str, why: str) -> Row:
    return Row(check, name, "", "", "", None, why)


def info(check: str, name: str, measured: str, note: str = "") -> Row:
    """A figure reported for the record, with nothing to compare it to."""
    return Row(check, name, "-", measured, "report only", True, note)


def failed(check: str, name: str, why: str) -> Row:
    """The check could not produce its figure (a crash, a missing file): a mismatch."""
    return Row(check, name, "a result", "none", "-", False, why)


def expect(check: str, name: str, expected: object, measured: object, note: str = "") -> Row:
    """Exact equality (layer counts, device names, exit codes)."""
    return Row(check, name, str(expected), str(measured), "equal", expected == measured, note)


def expect_true(
    check: str, name: str, condition: bool, expected: str, measured: str, note: str = ""
) -> Row:
    return Row(check, name, expected, measured, "-", bool(condition), note)


def within_mib(
    check: str, name: str, expected_bytes: int, measured_bytes: int, tol_mib: float
) -> Row:
    """|measured − expected| ≤ tol_mib MiB (the edge counts as within)."""
    error_mib = (measured_bytes - expected_bytes) / MiB
    return Row(
        check,
        name,
        f"{expected_bytes / MiB:.2f} MiB",
        f"{measured_bytes / MiB:.2f} MiB",
        f"±{tol_mib:g} MiB",
        abs(error_mib) <= tol_mib + 1e-9,
        f"{error_mib:+.2f} MiB",
    )


def within_pct(
    check: str, name: str, expected: float, measured: float, tol_pct: float, unit: str = ""
) -> Row:
    """|measured − expected| ≤ tol_pct % of expected (the edge counts as within)."""
    if expected == 0:
        return Row(check, name, f"0{unit}", f"{measured:g}{unit}", f"±{tol_pct:g} %", measured == 0)
    error_pct = 100.0 * (measured - expected) / expected
    return Row(
        check,
        name,
        f"{_fmt(expected)}{unit}",
        f"{_fmt(measured)}{unit}",
        f"±{tol_pct:g} %",
        abs(error_pct) <= tol_pct + 1e-9,
        f"{error_pct:+.1f} %",
    )


def within_range(
    check: str, name: str, low: float, high: float, measured: float, unit: str = ""
) -> Row:
    """low ≤ measured ≤ high (both edges count as within)."""
    return Row(
        check,
        name,
        f"{_fmt(low)}..{_fmt(high)}{unit}",
        f"{_fmt(measured)}{unit}",
        "range",
        low <= measured <= high,
    )


def verdict(rows: Sequence[Row]) -> int:
    if any(row.ok is False for row in rows):
        return EXIT_MISMATCH
    if not any(row.ok for row in rows):
        return EXIT_NOTHING_CHECKED
    return EXIT_OK


def summary(rows: Sequence[Row]) -> str:
    counts = {
        "ok": sum(1 for r in rows if r.ok is True),
        "MISMATCH": sum(1 for r in rows if r.ok is False),
        "skipped": sum(1 for r in rows if r.ok is None),
    }
    words = {EXIT_OK: "all checks passed", EXIT_MISMATCH: "MISMATCH"}
    head = words.get(verdict(rows), "nothing was checked")
    return f"{head}: " + ", ".join(f"{n} {label}" for label, n in counts.items())


def format_table(rows: Iterable[Row]) -> list[str]:
    """One line per row, grouped by check; skipped rows show why."""
    lines = [f"{'check / row':<44}{'expected':>18}{'measured':>18}{'tolerance':>14}  result"]
    current = None
    for row in rows:
        if row.check != current:
            current = row.check
            lines.append(f"-- {current}")
        status = {True: "ok", False: "MISMATCH", None: "skipped"}[row.ok]
        note = f"  ({row.note})" if row.note else ""
        lines.append(
            f"   {row.name:<41}{row.expected:>18}{row.measured:>18}{row.tolerance:>14}"
            f"  {status}{note}"
        )
    return lines


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
