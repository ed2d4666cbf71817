"""Kill ``localchat pull`` mid-file (Ctrl-C and SIGKILL), start it again: it resumes.

Real subprocesses and real HTTP; the hub is the loopback fake hub (``HF_ENDPOINT``).
The server trickles so the kill lands mid-file; its byte counters prove how much
was fetched twice.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from localchat.paths import hf_cache_dir, partial_downloads_dir
from tests.fixtures.fakehub import (
    FakeHub,
    Fault,
    cache_files,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
    make_gguf_like,
)
from tests.integration.cli import default_sigint

REPO = "acme/resume-GGUF"
FILE = "resume-Q4_K_M.gguf"
SIZE = 8_000_000
DATA = make_gguf_like(SIZE, seed=5)


def start_pull(hub: FakeHub, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "localchat", "pull", f"{REPO}:Q4_K_M"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )


def wait_for_partial(min_bytes: int, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for partial in partial_downloads_dir().rglob("*.incomplete"):
            if partial.stat().st_size >= min_bytes:
                return partial
        time.sleep(0.02)
    raise AssertionError("the pull never got going")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_killed_pull_resumes_and_refetches_under_one_percent(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
    sig: signal.Signals,
) -> None:
    fake_hub.add_repo(REPO, {FILE: DATA})
    fake_hub.set_fault(REPO, FILE, Fault("trickle", bytes_per_s=2_000_000))
    proc = start_pull(fake_hub, localchat_home)
    partial = wait_for_partial(3_000_000)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    if sig == signal.SIGINT:
        assert proc.returncode == ExitCode.INTERRUPTED
        assert "interrupted" in stderr and "resume" in stderr and "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    kept_bytes = partial.stat().st_size
    assert 3_000_000 <= kept_bytes < SIZE
    assert cache_files(hf_cache_dir()) == {}  # nothing half-written is visible

    deadline = time.monotonic() + 10
    while not fake_hub.requests("GET", FILE) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server logs the cut-off request when its next write fails
    served_before = fake_hub.bytes_served(FILE)
    fake_hub.clear_faults()
    result = start_pull(fake_hub, localchat_home)
    out, err = result.communicate(timeout=60)
    assert result.returncode == 0, err
    assert "resuming" in err
    refetched = fake_hub.bytes_served(FILE) - served_before - (SIZE - kept_bytes)
    overlap = served_before - kept_bytes  # bytes sent before the kill that never hit the disk
    assert refetched == 0
    assert overlap < 0.01 * kept_bytes, (served_before, kept_bytes)
    path = Path(out.strip())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert not partial.exists()
