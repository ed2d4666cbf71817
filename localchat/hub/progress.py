"""Download progress: plain events for the TUI, and a renderer for the CLI's stderr.

The downloader calls a ``ProgressCallback`` with a ``PullProgress`` event at most
every ``min_interval_s`` per file, plus once at every stage change.  Nothing here
imports a UI library.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

from localchat.units import format_bytes, format_eta

Stage = Literal["resolve", "waiting", "download", "retry", "verify", "join", "done"]


@dataclass(frozen=True)
class PullProgress:
    """One progress event.  ``bytes_*`` are for ``file``; ``overall_*`` for the whole pull."""

    file: str
    stage: Stage
    bytes_done: int
    bytes_total: int
    speed_bytes_per_s: float
    eta_s: float | None
    overall_bytes_done: int
    overall_bytes_total: int
    file_index: int = 0  # 1-based position of ``file`` in the pull; 0 before any file
    file_count: int = 0
    message: str = ""

    @property
    def overall(self) -> float:
        """Fraction of the whole pull done, 0.0 to 1.0."""
        if self.overall_bytes_total <= 0:
            return 1.0 if self.stage == "done" else 0.0
        return min(1.0, self.overall_bytes_done / self.overall_bytes_total)

    @property
    def fraction(self) -> float:
        if self.bytes_total <= 0:
            return 0.0
        return min(1.0, self.bytes_done / self.bytes_total)


ProgressCallback = Callable[[PullProgress], None]


class SpeedMeter:
    """Bytes per second over a sliding window of a few seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._samples: list[tuple[float, int]] = []

    def add(self, total_bytes: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, total_bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.pop(0)
        return self.speed_bytes_per_s

    @property
    def speed_bytes_per_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


class StderrProgress:
    """Renders events on stderr: a rewritten line on a terminal, else a line every few seconds."""

    def __init__(self, stream: TextIO | None = None, *, line_interval_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.is_tty = self.stream.isatty()
        self.line_interval_s = line_interval_s
        self._last_line_at = 0.0
        self._last_len = 0

    def __call__(self, event: PullProgress) -> None:
        if event.stage == "download":
            self._progress_line(event)
            return
        self._clear()
        line = self._stage_line(event)
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _progress_line(self, event: PullProgress) -> None:
        now = time.monotonic()
        text = describe(event)
        if self.is_tty:
            pad = max(0, self._last_len - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._last_len = len(text)
            self.stream.flush()
        elif now - self._last_line_at >= self.line_interval_s:
            self._last_line_at = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def _stage_line(self, event: PullProgress) -> str:
        name = short_name(event.file)
        if event.stage == "done" and event.file:
            return f"{name}: {event.message or format_bytes(event.bytes_total) + ' verified'}"
        if event.stage == "done":
            return event.message
        if event.stage in ("retry", "waiting", "resolve", "join", "verify"):
            return f"{name}: {event.message}" if name else event.message
        return ""

    def _clear(self) -> None:
        if self.is_tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0


def short_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def describe(event: PullProgress) -> str:
    """``name  1.2/3.4 GB  35%  45.1 MB/s  ETA 00:52  [file 1/2, total 20%]``"""
    parts = [
        short_name(event.file),
        f"{format_bytes(event.bytes_done)}/{format_bytes(event.bytes_total)}",
        f"{event.fraction * 100:3.0f}%",
        f"{format_bytes(event.speed_bytes_per_s)}/s",
        f"ETA {format_eta(event.eta_s)}",
    ]
    if event.file_count > 1:
        parts.append(
            f"[file {event.file_index}/{event.file_count}, total {event.overall * 100:.0f}%]"
        )
    return "  ".join(parts)
