"""What-if hardware: ``--vram 24GiB`` (repeatable), ``--ram 64GiB``, ``--apple 32GiB``,
``--cpu-only``, and the profile table the docs are generated from.

Sizes accept decimal and binary units: ``24GB`` = 24e9 bytes, ``24GiB`` = 24·2³⁰,
a bare number is GiB (``24`` = 24 GiB), ``1.5T`` = 1.5e12 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from localchat.errors import ConfigError
from localchat.hardware.types import CpuInfo, GpuInfo, Hardware

GB = 10**9
GiB = 1 << 30
_UNITS = {
    "": GiB,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 1 << 10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 1 << 20,
    "g": GB,
    "gb": GB,
    "gib": GiB,
    "t": 10**12,
    "tb": 10**12,
    "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
APPLE_BUDGET_FRACTION = 0.70  # Metal's recommendedMaxWorkingSetSize is about 2/3-3/4 of RAM
WHAT_IF_RAM_AVAILABLE_FRACTION = 0.90  # the OS and other programs keep the rest
DEFAULT_WHAT_IF_RAM_BYTES = 64 * GiB
WHAT_IF_CPU_BANDWIDTH = 60 * GB  # dual-channel DDR5 desktop
WHAT_IF_CPU_CORES = 8
# Apple unified-memory bandwidth by RAM size (base / Pro / Max / Ultra class machines)
_APPLE_BANDWIDTH = (
    (16, 120 * GB, "M4"),
    (32, 273 * GB, "M4 Pro"),
    (64, 546 * GB, "M4 Max"),
    (10**6, 800 * GB, "M2 Ultra"),
)
# discrete GPU stand-ins for a what-if size: (up to GiB, bandwidth, name)
_GPU_BY_SIZE = (
    (8, 272 * GB, "RTX 4060 class"),
    (12, 360 * GB, "RTX 3060 class"),
    (16, 288 * GB, "RTX 4060 Ti 16GB class"),
    (24, 936 * GB, "RTX 3090 class"),
    (48, 768 * GB, "RTX A6000 class"),
    (10**6, 2039 * GB, "A100 80GB class"),
)


def parse_size(text: str) -> int:
    """``"24GiB"`` -> bytes.  Raises ``ConfigError`` on anything else."""
    match = _SIZE_RE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"not a size: {text!r}", hint="write e.g. 24GiB, 24GB or 64")
    value = float(match.group(1)) * _UNITS[unit]
    if value <= 0:
        raise ConfigError(f"size must be positive: {text!r}")
    return int(value)


def what_if_cpu(cores: int = WHAT_IF_CPU_CORES) -> CpuInfo:
    return CpuInfo(
        model_name="what-if CPU",
        physical_cores=cores,
        logical_cores=cores * 2,
        features=("avx2", "fma", "f16c"),
        bandwidth_bytes_per_s=WHAT_IF_CPU_BANDWIDTH,
        arch="x86_64",
        bandwidth_source="what-if",
    )


def what_if_gpu(index: int, size_bytes: int) -> GpuInfo:
    gib = size_bytes / GiB
    _, bandwidth, name = next(row for row in _GPU_BY_SIZE if gib <= row[0] + 0.5)
    return GpuInfo(
        index=index,
        name=f"{gib:.0f} GiB GPU ({name})",
        vendor="nvidia",
        total_bytes=size_bytes,
        free_bytes=size_bytes,
        bandwidth_bytes_per_s=bandwidth,
        source="what-if",
    )


def apple_machine(ram_bytes: int) -> Hardware:
    gib = ram_bytes / GiB
    _, bandwidth, chip = next(row for row in _APPLE_BANDWIDTH if gib <= row[0] + 0.5)
    budget = int(ram_bytes * APPLE_BUDGET_FRACTION)
    gpu = GpuInfo(0, f"Apple {chip} ({gib:.0f} GiB)", "apple", budget, budget, bandwidth, "what-if")
    cpu = replace(
        what_if_cpu(),
        model_name=f"Apple {chip}",
        arch="arm64",
        features=("neon", "dotprod"),
        bandwidth_bytes_per_s=bandwidth,
    )
    note = f"what-if: Metal budget taken as {APPLE_BUDGET_FRACTION:.0%} of {gib:.0f} GiB RAM"
    return Hardware(
        cpu=cpu,
        ram_total_bytes=ram_bytes,
        ram_available_bytes=int(ram_bytes * WHAT_IF_RAM_AVAILABLE_FRACTION),
        gpus=(gpu,),
        unified_memory=True,
        notes=(note,),
        what_if=True,
    )


def what_if_hardware(
    base: Hardware | None = None,
    *,
    vram: Sequence[str | int] = (),
    ram: str | int | None = None,
    apple: str | int | None = None,
    cpu_only: bool = False,
) -> Hardware:
    """Hardware for what-if flags, starting from ``base`` (this machine) where given.

    ``--apple`` wins over ``--vram``; ``--cpu-only`` drops every GPU.
    """
    ram_bytes = _bytes(ram) if ram is not None else None
    if apple is not None:
        return apple_machine(_bytes(apple))
    cpu = base.cpu if base is not None else what_if_cpu()
    total = ram_bytes or (base.ram_total_bytes if base else DEFAULT_WHAT_IF_RAM_BYTES)
    available = (
        int(total * WHAT_IF_RAM_AVAILABLE_FRACTION)
        if ram_bytes is not None or base is None
        else base.ram_available_bytes
    )
    if cpu_only:
        gpus: tuple[GpuInfo, ...] = ()
    elif vram:
        gpus = tuple(what_if_gpu(i, _bytes(size)) for i, size in enumerate(vram))
    else:
        gpus = base.gpus if base is not None else ()
    return Hardware(
        cpu=cpu,
        ram_total_bytes=total,
        ram_available_bytes=available,
        gpus=gpus,
        unified_memory=bool(base and base.unified_memory and not vram and not cpu_only),
        build=base.build if base is not None and not (vram or cpu_only) else None,
        notes=base.notes if base is not None else (),
        what_if=True,
    )


def _bytes(value: str | int) -> int:
    return value if isinstance(value, int) else parse_size(value)


@dataclass(frozen=True)
class Profile:
    label: str
    hardware: Hardware


def profile_table() -> list[Profile]:
    """The machines the docs' fitting table plans for ("GB" as marketed: GiB)."""
    rows: list[Profile] = []
    for vram_gb in (8, 12, 16, 24, (24, 24), 48, 80):
        sizes = vram_gb if isinstance(vram_gb, tuple) else (vram_gb,)
        for ram_gb in (32, 64, 128):
            label = "+".join(f"{s}" for s in sizes) + f" GB GPU, {ram_gb} GB RAM"
            hw = what_if_hardware(vram=[s * GiB for s in sizes], ram=ram_gb * GiB)
            rows.append(Profile(label, hw))
    for ram_gb in (16, 32, 64, 128):
        rows.append(Profile(f"Apple {ram_gb} GB", apple_machine(ram_gb * GiB)))
    for ram_gb in (16, 64):
        hw = what_if_hardware(ram=ram_gb * GiB, cpu_only=True)
        rows.append(Profile(f"CPU only, {ram_gb} GB RAM", hw))
    return rows
