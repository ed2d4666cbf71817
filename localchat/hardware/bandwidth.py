"""Memory bandwidth: known per GPU family, estimated or measured for the CPU.

Decoding one token reads every weight once, so the planner's speed model is
``bytes read per token / bandwidth`` per device.  Figures are the vendors'
published peak bandwidths in decimal GB/s; llama.cpp reaches roughly 60-80 %
of them, which the planner accounts for, not this table.

CPU estimate (no measurement): ``CPU_BYTES_PER_S_PER_CORE`` per physical core,
capped at ``CPU_BYTES_PER_S_CAP``.  A core streams roughly 10 GB/s and a
desktop's dual-channel DDR4/DDR5 tops out at 50-90 GB/s, so small machines are
core-bound and big ones memory-bound.  ``measure_cpu_bandwidth()`` replaces the
estimate with a numpy copy (read + write bytes / time, best of a few runs,
single thread, so a lower bound), cached per CPU in the data dir.
"""

from __future__ import annotations

import contextlib
import re
import time

from localchat.jsonfile import read_json, update_json
from localchat.paths import data_dir

GB = 1e9
CPU_BYTES_PER_S_PER_CORE = 10 * GB
CPU_BYTES_PER_S_CAP = 80 * GB
MEASURE_ARRAY_BYTES = 256 * 1024 * 1024
MEASURE_RUNS = 4

# (regex on the lower-cased device name, GB/s).  First match wins, so the more
# specific names come first.
GPU_BANDWIDTH_GB_PER_S: tuple[tuple[str, float], ...] = (
    # NVIDIA data centre
    (r"gh200", 4000),
    (r"h200", 4800),
    (r"h100.*nvl", 3900),
    (r"h100.*pcie", 2000),
    (r"h100", 3350),  # SXM5 80 GB HBM3
    (r"a100.*80\s*gb.*pcie|a100.*pcie.*80\s*gb", 1935),
    (r"a100.*80\s*gb", 2039),
    (r"a100", 1555),
    (r"l40s?", 864),
    (r"\bl4\b", 300),
    (r"a10g?\b", 600),
    (r"\bt4\b", 320),
    (r"v100", 900),
    (r"rtx 6000 ada", 960),
    (r"rtx a6000|\ba6000\b", 768),
    # NVIDIA GeForce 50 / 40 / 30
    (r"rtx 5090", 1792),
    (r"rtx 5080", 960),
    (r"rtx 5070 ti", 896),
    (r"rtx 5070", 672),
    (r"rtx 5060 ti", 448),
    (r"rtx 4090", 1008),
    (r"rtx 4080 super", 736),
    (r"rtx 4080", 717),
    (r"rtx 4070 ti super", 672),
    (r"rtx 4070", 504),  # 4070, 4070 SUPER, 4070 Ti
    (r"rtx 4060 ti", 288),
    (r"rtx 4060", 272),
    (r"rtx 3090 ti", 1008),
    (r"rtx 3090", 936),
    (r"rtx 3080 ti", 912),
    (r"rtx 3080", 760),
    (r"rtx 3070 ti", 608),
    (r"rtx 3070", 448),
    (r"rtx 3060 ti", 448),
    (r"rtx 3060", 360),
    # AMD
    (r"mi300x", 5300),
    (r"mi250x?", 3277),
    (r"7900 xtx", 960),
    (r"7900 xt", 800),
    (r"7800 xt", 624),
    (r"6900 xt|6800 xt", 512),
    # Apple Silicon (unified memory; the GPU and the CPU share it)
    (r"m1 ultra", 800),
    (r"m1 max", 400),
    (r"m1 pro", 200),
    (r"\bm1\b", 68.25),
    (r"m2 ultra", 800),
    (r"m2 max", 400),
    (r"m2 pro", 200),
    (r"\bm2\b", 100),
    (r"m3 ultra", 819),
    (r"m3 max", 400),  # 300 on the 14-core-CPU bin
    (r"m3 pro", 150),
    (r"\bm3\b", 100),
    (r"m4 max", 546),  # 410 on the 14-core-CPU bin
    (r"m4 pro", 273),
    (r"\bm4\b", 120),
)


def gpu_bandwidth_bytes_per_s(name: str, total_bytes: int = 0) -> float | None:
    """Published bandwidth for a device name such as "NVIDIA GeForce RTX 4090"; None if unknown.

    ``total_bytes`` is folded into the name so that "A100 ... 80GB" can match.
    """
    key = name.lower().replace("-", " ")
    if total_bytes >= 60 * GB and "gb" not in key:
        key += f" {round(total_bytes / 2**30)}gb"
    for pattern, gb_per_s in GPU_BANDWIDTH_GB_PER_S:
        if re.search(pattern, key):
            return gb_per_s * GB
    return None


def estimate_cpu_bandwidth(physical_cores: int) -> tuple[float, str]:
    """(bytes/s, how) without measuring: per-core streaming rate, capped."""
    estimate = min(max(physical_cores, 1) * CPU_BYTES_PER_S_PER_CORE, CPU_BYTES_PER_S_CAP)
    how = (
        f"estimate: {CPU_BYTES_PER_S_PER_CORE / GB:.0f} GB/s x {physical_cores} cores, "
        f"cap {CPU_BYTES_PER_S_CAP / GB:.0f} GB/s"
    )
    return estimate, how


def measure_copy_bandwidth(
    array_bytes: int = MEASURE_ARRAY_BYTES, runs: int = MEASURE_RUNS
) -> float:
    """Single-thread numpy copy: (read + write bytes) / seconds, best run (first is warm-up)."""
    import numpy as np

    source = np.ones(array_bytes // 8, dtype=np.float64)
    target = np.empty_like(source)
    best_s = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        np.copyto(target, source)
        best_s = min(best_s, time.perf_counter() - start)
    return 2 * source.nbytes / best_s


def _cache_key(cpu_model: str, logical_cores: int) -> str:
    return f"{cpu_model}|{logical_cores}"


def measure_cpu_bandwidth(cpu_model: str, logical_cores: int) -> tuple[float, str]:
    """Measured copy bandwidth, cached in ``data_dir()/cpu_bandwidth.json`` per CPU."""
    cache_file = data_dir() / "cpu_bandwidth.json"
    key = _cache_key(cpu_model, logical_cores)
    cached = read_json(cache_file).get(key)
    if isinstance(cached, int | float) and not isinstance(cached, bool):
        return float(cached), "measured (cached): single-thread numpy copy"
    measured = measure_copy_bandwidth()
    with contextlib.suppress(OSError, TimeoutError):  # a cache: never fail over it
        update_json(cache_file, lambda data: data.__setitem__(key, measured))
    return measured, "measured: single-thread numpy copy"
