"""Turns byte counts from the downloader into throttled ``PullProgress`` events."""

from __future__ import annotations

import time

from localchat.hub.progress import ProgressCallback, PullProgress, SpeedMeter, Stage

EVENT_INTERVAL_S = 0.1


class ProgressTracker:
    """Keeps per-file and overall counters for one pull and reports them to a callback."""

    def __init__(self, callback: ProgressCallback | None, *, total_bytes: int, file_count: int):
        self.callback = callback
        self.overall_total = total_bytes
        self.overall_done = 0
        self.file_count = file_count
        self.file_index = 0
        self.file = ""
        self.file_total = 0
        self.file_done = 0
        self.fetched_bytes = 0  # bytes that came over the network in this pull
        self._meter = SpeedMeter()
        self._last_event_at = 0.0

    def start_file(self, path: str, size_bytes: int, *, present_bytes: int = 0) -> None:
        self.file_index += 1
        self.file = path
        self.file_total = size_bytes
        self.file_done = present_bytes
        self.overall_done += present_bytes
        self._meter = SpeedMeter()
        self._meter.add(self.fetched_bytes)
        message = f"resuming at {present_bytes} bytes" if 0 < present_bytes < size_bytes else ""
        self.emit("download" if not message else "retry", message, force=True)

    def skip_file(self, path: str, size_bytes: int) -> None:
        """A file already in the cache counts as done."""
        self.file_index += 1
        self.file = path
        self.file_total = self.file_done = size_bytes
        self.overall_done += size_bytes
        self.emit("done", "already in the cache", force=True)

    def add_bytes(self, count: int) -> None:
        self.file_done += count
        self.overall_done += count
        self.fetched_bytes += count
        now = time.monotonic()
        if now - self._last_event_at >= EVENT_INTERVAL_S:
            self._meter.add(self.fetched_bytes, now)
            self.emit("download")

    def restart_file(self) -> None:
        """The partial was discarded (server ignored Range, or bad bytes): count from zero."""
        self.overall_done -= self.file_done
        self.file_done = 0

    def finish_file(self) -> None:
        self.emit("done", force=True)

    def emit(self, stage: Stage, message: str = "", *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last_event_at < EVENT_INTERVAL_S:
            return
        self._last_event_at = now
        speed = self._meter.speed_bytes_per_s
        left = max(0, self.file_total - self.file_done)
        self.callback(
            PullProgress(
                file=self.file,
                stage=stage,
                bytes_done=self.file_done,
                bytes_total=self.file_total,
                speed_bytes_per_s=speed,
                eta_s=left / speed if speed > 0 else None,
                overall_bytes_done=self.overall_done,
                overall_bytes_total=self.overall_total,
                file_index=self.file_index,
                file_count=self.file_count,
                message=message,
            )
        )
