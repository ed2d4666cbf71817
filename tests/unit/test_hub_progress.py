"""Progress events and their stderr rendering; retry backoff."""

from __future__ import annotations

import io

from localchat.hub.client import RetryPolicy
from localchat.hub.progress import PullProgress, StderrProgress, describe, format_eta
from localchat.hub.tracker import ProgressTracker


def event(**kw) -> PullProgress:
    base = dict(
        file="dir/Model-Q8_0-00001-of-00002.gguf",
        stage="download",
        bytes_done=500_000_000,
        bytes_total=1_000_000_000,
        speed_bytes_per_s=50_000_000.0,
        eta_s=10.0,
        overall_bytes_done=500_000_000,
        overall_bytes_total=2_000_000_000,
        file_index=1,
        file_count=2,
    )
    base.update(kw)
    return PullProgress(**base)


def test_describe_shows_bytes_speed_eta_and_total() -> None:
    text = describe(event())
    assert "Model-Q8_0-00001-of-00002.gguf" in text
    assert "500.0 MB/1.0 GB" in text and "50%" in text and "50.0 MB/s" in text
    assert "ETA 00:10" in text and "file 1/2, total 25%" in text
    assert event().overall == 0.25
    assert format_eta(None) == "--:--" and format_eta(3725) == "1:02:05"


def test_stderr_renderer_rewrites_one_line_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    render = StderrProgress(out)
    render(event())
    render(event(bytes_done=600_000_000))
    render(event(stage="done", message=""))
    text = out.getvalue()
    assert text.count("\r") >= 2 and text.endswith("verified\n")


def test_tracker_counts_overall_and_throttles() -> None:
    events: list[PullProgress] = []
    tracker = ProgressTracker(events.append, total_bytes=300, file_count=2)
    tracker.skip_file("a.gguf", 100)
    tracker.start_file("b.gguf", 200, present_bytes=50)
    for _ in range(150):
        tracker.add_bytes(1)
    tracker.finish_file()
    last = events[-1]
    assert last.stage == "done" and last.overall_bytes_done == 300 and last.bytes_done == 200
    assert tracker.fetched_bytes == 150
    assert len(events) < 20  # throttled, not one per chunk
    assert any(e.stage == "retry" and "resuming" in e.message for e in events)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_base_s=1.0, backoff_max_s=4.0)
    assert 0.75 <= policy.delay_s(1) <= 1.25
    assert 1.5 <= policy.delay_s(2) <= 2.5
    assert policy.delay_s(10) <= 5.0
