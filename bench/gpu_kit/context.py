"""What every check needs: the interpreter with the GPU build, a private LOCALCHAT_HOME,
the models, and a way to run ``localchat`` and the kit's worker as child processes.

Checks run localchat the way a user does (``python -m localchat ...``, JSON output)
wherever the CLI can say what is needed; what the CLI cannot do (load a plan after
VRAM was taken away, read llama.cpp's per-device log of that load) runs in a child
``bench/gpu_check.py --worker ...`` process, so the checking process itself never
holds a CUDA context and a crash in llama.cpp is one failed row, not the end.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"
NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,memory.free,memory.used",
    "--format=csv,noheader,nounits",
]


class ChildFailed(RuntimeError):
    """A localchat command or worker exited non-zero or printed no JSON."""


@dataclass(frozen=True)
class SmiGpu:
    index: int
    name: str
    total_mib: int
    free_mib: int
    used_mib: int


@dataclass
class Kit:
    python: str  # the interpreter whose llama-cpp-python is checked
    home: Path  # LOCALCHAT_HOME for every child: calibrations start empty, the user's stay
    work: Path  # where models are written
    kind: str  # "cuda", "metal" or "cpu"
    quick: bool = False
    timeout_s: float = 300.0
    gemma: Path | None = None
    dense: Path | None = None  # the written dense model (a few GB)
    moe: Path | None = None  # the written Mixtral-shaped model
    awq_dir: Path | None = None  # tiny AWQ checkpoints (tests/fixtures/awq_models.py)
    notes: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            LOCALCHAT_HOME=str(self.home),
            LOCALCHAT_HOST="off",  # never hand the work to a server that happens to run
            HF_HUB_OFFLINE="1",  # the lent GPU machine has no network; nothing downloads
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            PYTHONUNBUFFERED="1",
        )
        return env

    def run(
        self, args: list[str], timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s or self.timeout_s,
        )

    def localchat(
        self, *args: str, timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "localchat", *args], timeout_s)

    def localchat_json(self, *args: str, timeout_s: float | None = None) -> dict[str, Any]:
        """``localchat ARGS --json``: the document, or ``ChildFailed`` with its stderr."""
        done = self.localchat(*args, "--json", timeout_s=timeout_s)
        return _json_or_fail(done, f"localchat {' '.join(args)}")

    def worker(self, mode: str, timeout_s: float | None = None, **kwargs: Any) -> dict[str, Any]:
        """``gpu_check.py --worker MODE`` with ``kwargs`` as JSON: its JSON answer."""
        args = [self.python, str(SCRIPT), "--worker", mode, "--worker-args", json.dumps(kwargs)]
        return _json_or_fail(self.run(args, timeout_s), f"worker {mode}")


def _json_or_fail(done: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ChildFailed(f"{what}: exit {done.returncode}: {' | '.join(tail)}")
    try:
        start = done.stdout.index("{")
        document: dict[str, Any] = json.loads(done.stdout[start:])
        return document
    except ValueError as exc:
        raise ChildFailed(f"{what}: no JSON in its output ({exc})") from exc


def gpu_kind() -> str:
    """The GPU to check: "cuda" where nvidia-smi lists one, "metal" on Apple Silicon,
    else "cpu"."""
    if smi_gpus():
        return "cuda"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "metal"
    return "cpu"


def smi_gpus() -> list[SmiGpu]:
    """The NVIDIA GPUs as nvidia-smi reports them (the reference the checks compare to)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5 and parts[0].isdigit():
            index, name, total, free, used = parts
            gpus.append(SmiGpu(int(index), name, int(total), int(free), int(used)))
    return gpus
