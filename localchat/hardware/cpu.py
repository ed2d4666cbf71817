"""CPU model, cores, ISA features and RAM (psutil, /proc/cpuinfo, sysctl)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from localchat.hardware.types import AmxStatus, CpuInfo

# ISA flags that matter for which llama.cpp build runs here (Linux /proc/cpuinfo spelling).
INTERESTING_FLAGS = (
    "sse3",
    "ssse3",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512vbmi",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)

# macOS sysctl hw.optional.* names -> our flag names.
_MACOS_SYSCTL_FLAGS = {
    "hw.optional.avx2_0": "avx2",
    "hw.optional.avx512f": "avx512f",
    "hw.optional.fma": "fma",
    "hw.optional.neon": "neon",
    "hw.optional.arm.FEAT_DotProd": "asimddp",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
}

PROC_CPUINFO = Path("/proc/cpuinfo")


def parse_proc_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """Model name and the interesting flags from /proc/cpuinfo's first processor block."""
    model_name = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model_name:
            model_name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if "pni" in flags:  # the kernel's name for SSE3
        flags.add("sse3")
    return model_name, tuple(flag for flag in INTERESTING_FLAGS if flag in flags)


def _sysctl(name: str) -> str:
    try:
        result = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _macos_model_and_flags() -> tuple[str, tuple[str, ...]]:
    model_name = _sysctl("machdep.cpu.brand_string")
    flags = {flag for name, flag in _MACOS_SYSCTL_FLAGS.items() if _sysctl(name) == "1"}
    if platform.machine() == "arm64":
        flags.add("neon")
    return model_name, tuple(flag for flag in INTERESTING_FLAGS if flag in flags)


def model_and_flags() -> tuple[str, tuple[str, ...]]:
    if sys.platform.startswith("linux"):
        try:
            return parse_proc_cpuinfo(PROC_CPUINFO.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return platform.processor(), ()
    if sys.platform == "darwin":
        return _macos_model_and_flags()
    return platform.processor(), ()


def core_counts() -> tuple[int, int]:
    """(physical, logical) cores; physical falls back to logical when psutil cannot tell."""
    import psutil

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    return physical, logical


def ram_bytes() -> tuple[int, int]:
    """(total, available) system RAM in bytes."""
    import psutil

    memory = psutil.virtual_memory()
    return int(memory.total), int(memory.available)


def detect_cpu(*, amx: AmxStatus | None = None) -> CpuInfo:
    """The CPU without bandwidth (``bandwidth.py`` fills that in)."""
    model_name, flags = model_and_flags()
    physical, logical = core_counts()
    return CpuInfo(
        model_name=model_name or "unknown CPU",
        physical_cores=physical,
        logical_cores=logical,
        features=flags,
        arch=platform.machine(),
        amx=amx,
    )
