"""Download progress as the app shows it: a load that pulls first, and the Models
screen's pull.  The events are the hub's ``PullProgress``; the app reads only these
fields of them (a Protocol, so nothing of the hub is imported here)."""

from __future__ import annotations

from typing import Protocol

from localchat.tui.services import format_eta, format_size


class PullEvent(Protocol):
    @property
    def stage(self) -> str: ...  # "resolve", "download", "verify", ..., "done"

    @property
    def overall_bytes_done(self) -> int: ...

    @property
    def overall_bytes_total(self) -> int: ...

    @property
    def speed_bytes_per_s(self) -> float: ...

    @property
    def eta_s(self) -> float | None: ...


def transfer_text(event: PullEvent) -> str:
    """``300 B / 1.0 kB · 100 B/s · ETA 00:07``"""
    done = format_size(event.overall_bytes_done)
    total = format_size(event.overall_bytes_total)
    speed = format_size(event.speed_bytes_per_s)
    return f"{done} / {total} · {speed}/s · ETA {format_eta(event.eta_s)}"


def load_progress_text(event: PullEvent) -> str:
    """What the status bar says while a model being loaded is fetched first."""
    if event.stage == "download" and event.overall_bytes_total:
        return f"downloading {transfer_text(event)}"
    return f"{event.stage}…"
