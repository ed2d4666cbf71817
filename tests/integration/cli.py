"""Run the real ``localchat`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def localchat_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"LOCALCHAT_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HOME", None)
    env.update(extra)
    return env


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test sends SIGINT: the default handler, which
    Python turns into KeyboardInterrupt.  A suite started with SIGINT ignored (a background
    job, ``nohup``) would otherwise pass the ignore on and the child would never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_localchat(
    home: Path, *args: str, stdin: str | None = None, timeout_s: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localchat", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=localchat_env(home, **env),
        timeout=timeout_s,
    )


def assert_one_clean_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> None:
    """A user error: the documented exit code, one stderr line, no traceback, no crash."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("localchat: error: "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
