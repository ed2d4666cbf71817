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


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def core_counts() -> tuple[int, int]:
    """(physical, logical) cores this process may use; physical falls back to logical when
    psutil cannot tell.  A CPU affinity mask or a cgroup CPU quota (containers) caps both,
    so a 2-CPU container on a 64-core host does not get 64 threads."""
    import psutil

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = min(logical, _affinity_cpus() or logical, cgroup_cpu_limit() or logical)
    return min(physical, usable), usable


def _affinity_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0)) or None
    except (AttributeError, OSError):
        return None


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs a cgroup v2 quota allows (``"200000 100000"`` -> 2, rounded up); None: no quota."""
    quota, _, period = _read(path).partition(" ")
    if not quota.isdigit() or not period.strip().isdigit() or int(period) <= 0:
        return None
    return max(-(-int(quota) // int(period)), 1)


SYS_CPU = Path("/sys/devices/system/cpu")
SYS_INTEL_CORE_PMU = Path("/sys/devices/cpu_core/cpus")  # only on Intel hybrid CPUs


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,8,10-11"`` (the kernel's cpulist format) -> ``[0, 1, 2, 3, 8, 10, 11]``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _physical_core_of(cpu: int, sys_cpu: Path) -> tuple[str, str]:
    topology = sys_cpu / f"cpu{cpu}" / "topology"
    return _read(topology / "physical_package_id"), _read(topology / "core_id") or str(cpu)


def linux_performance_cores(
    sys_cpu: Path = SYS_CPU, intel_core_pmu: Path = SYS_INTEL_CORE_PMU
) -> int:
    """Physical performance cores of a hybrid CPU on Linux; 0 when all cores are alike.

    Intel hybrid CPUs list their P-cores (with SMT siblings) in ``cpu_core/cpus``;
    ARM big.LITTLE CPUs give each core a ``cpu_capacity`` (the big ones have the most).
    """
    online = parse_cpu_list(_read(sys_cpu / "online") or "0")
    performance = parse_cpu_list(_read(intel_core_pmu)) if _read(intel_core_pmu) else []
    if not performance:
        capacity = {cpu: _read(sys_cpu / f"cpu{cpu}" / "cpu_capacity") for cpu in online}
        values = {int(v) for v in capacity.values() if v.isdigit()}
        if len(values) < 2:
            return 0
        performance = [cpu for cpu, v in capacity.items() if v.isdigit() and int(v) == max(values)]
    if len(performance) >= len(online):
        return 0
    return len({_physical_core_of(cpu, sys_cpu) for cpu in performance})


def performance_core_count() -> int:
    """Physical performance cores on a hybrid CPU (Intel P-cores, Apple P-cores, ARM big
    cores); 0 when the cores are all alike or it cannot be told."""
    if sys.platform.startswith("linux"):
        return linux_performance_cores()
    if sys.platform == "darwin":
        levels = _sysctl("hw.nperflevels")
        if levels.isdigit() and int(levels) > 1:
            count = _sysctl("hw.perflevel0.physicalcpu")
            return int(count) if count.isdigit() else 0
    return 0


BUSY_SAMPLE_S = 0.1


def busy_core_count(sample_s: float = BUSY_SAMPLE_S) -> int:
    """Cores other programs keep busy right now (CPU time over ``sample_s``, rounded).

    llama.cpp's threads wait for each other at every op; one preempted by another
    program stalls the rest, so on a busy machine fewer threads decode faster.
    """
    import psutil

    try:
        busy_percent = psutil.cpu_percent(interval=sample_s) * (psutil.cpu_count() or 1)
    except (OSError, RuntimeError):
        return 0
    return int(busy_percent / 100 + 0.5)


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
        performance_cores=performance_core_count(),
        busy_cores=busy_core_count(),
    )
