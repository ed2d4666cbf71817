"""Byte sizes and durations as people read them (decimal units, as the hub shows sizes)."""

from __future__ import annotations


def format_bytes(size_bytes: float | None) -> str:
    """``42.5 GB``, ``398.0 MB``, ``512 B``; ``?`` when unknown."""
    if size_bytes is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size_bytes) >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{int(size_bytes)} B"


def format_eta(eta_s: float | None) -> str:
    """``mm:ss`` or ``h:mm:ss``; ``--:--`` when unknown."""
    if eta_s is None:
        return "--:--"
    hours, rest = divmod(int(eta_s), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
