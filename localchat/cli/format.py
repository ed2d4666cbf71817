"""Small text formatting helpers for command output."""

from __future__ import annotations


def human_bytes(size_bytes: float) -> str:
    """Decimal units, as the Hugging Face file browser shows sizes (42.5 GB)."""
    value = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
