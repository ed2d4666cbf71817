"""Apple Silicon: the Metal working-set budget is the GPU's share of unified memory.

``MTLDevice.recommendedMaxWorkingSetSize`` is what llama.cpp's Metal backend
reports as the device's memory (about 2/3 to 3/4 of RAM; ``sudo sysctl
iogpu.wired_limit_mb=N`` raises it).  We read it through pyobjc when
``pyobjc-framework-Metal`` is installed, or through llama.cpp's ggml device
list (``detect_hardware(include_build=True)``); otherwise we estimate it as
``METAL_BUDGET_FRACTION`` of RAM and say so in ``Hardware.notes``.
"""

from __future__ import annotations

import platform
import sys

from localchat.hardware.bandwidth import gpu_bandwidth_bytes_per_s
from localchat.hardware.types import GpuInfo

METAL_BUDGET_FRACTION = 0.70  # observed 0.67 (16 GB M4) ... 0.84 (128 GB)


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def metal_working_set_bytes() -> tuple[str, int] | None:
    """(device name, recommendedMaxWorkingSetSize) via pyobjc; None if unavailable."""
    try:
        import Metal  # type: ignore[import-not-found]
    except ImportError:
        return None
    device = Metal.MTLCreateSystemDefaultDevice()
    if device is None:
        return None
    return str(device.name()), int(device.recommendedMaxWorkingSetSize())


def apple_gpu(
    chip_name: str,
    budget_bytes: int,
    ram_available_bytes: int,
    source: str,
) -> GpuInfo:
    """The Metal GPU; free = the budget, but never more than the RAM available now."""
    return GpuInfo(
        index=0,
        name=chip_name,
        vendor="apple",
        total_bytes=budget_bytes,
        free_bytes=min(budget_bytes, ram_available_bytes),
        bandwidth_bytes_per_s=gpu_bandwidth_bytes_per_s(chip_name),
        source=source,
    )


def detect_apple(
    chip_name: str, ram_total_bytes: int, ram_available_bytes: int
) -> tuple[GpuInfo, tuple[str, ...]]:
    """The Apple GPU and notes saying where its budget came from."""
    metal = metal_working_set_bytes()
    if metal is not None:
        name, budget_bytes = metal
        return apple_gpu(name, budget_bytes, ram_available_bytes, "metal"), ()
    budget_bytes = int(ram_total_bytes * METAL_BUDGET_FRACTION)
    note = (
        f"Metal budget estimated as {METAL_BUDGET_FRACTION:.0%} of RAM "
        "(install pyobjc-framework-Metal or run `localchat hw --build` to read it)"
    )
    return apple_gpu(chip_name, budget_bytes, ram_available_bytes, "estimate"), (note,)
