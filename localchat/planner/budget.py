"""How much each device may hold, and whether an estimate fits.

* discrete GPU: free memory (as NVML / nvidia-smi report it, before CUDA starts)
  minus a reserve of ``max(1 GiB, 5 %)`` for the CUDA context, cuBLAS workspace and
  the pool growth llama.cpp does not reserve up front (fitting.md §5: 300-500 MiB
  of context alone; llama.cpp's own ``--fit`` keeps 1 GiB free).
* Apple: Metal's working-set budget minus 512 MiB; and GPU + CPU parts together
  must fit the RAM available, since it is the same memory.
* RAM: *total* RAM minus a reserve of ``max(1.5 GiB, 15 % of total)`` for the OS and
  other programs.  Total, not free: free memory moves with the page cache and whatever
  else runs, and a verdict that flips between two runs is no use.  When less is free
  right now than the plan needs, the plan says so (``ram_note``).
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.hardware.types import Hardware
from localchat.planner.memory import GiB, MemoryEstimate, MiB

GPU_RESERVE_MIN_BYTES = 1 * GiB
GPU_RESERVE_FRACTION = 0.05
APPLE_RESERVE_BYTES = 512 * MiB
RAM_RESERVE_MIN_BYTES = 3 * GiB // 2
RAM_RESERVE_FRACTION = 0.15


REMOTE_RESERVE_MIN_BYTES = 512 * MiB  # an RPC worker's context already exists when it reports
REMOTE_RESERVE_FRACTION = 0.05


@dataclass(frozen=True)
class Budgets:
    """Offload devices in llama.cpp's order: RPC workers' devices first, then local GPUs."""

    gpu_free_bytes: tuple[int, ...]  # what each offload device offers before our reserve
    gpu_reserve_bytes: tuple[int, ...]
    ram_budget_bytes: int  # for every CPU-side buffer (and, when unified, the GPU part too)
    unified_memory: bool = False
    gpu_offload_supported: bool = True
    n_remote: int = 0  # the first n_remote offload devices are RPC workers' (RPC0, RPC1, ...)

    def device_name(self, index: int) -> str:
        return f"RPC{index}" if index < self.n_remote else f"GPU{index - self.n_remote}"

    @property
    def n_gpus(self) -> int:
        return len(self.gpu_free_bytes) if self.gpu_offload_supported else 0

    def gpu_usable_bytes(self, gpu: int) -> int:
        return max(self.gpu_free_bytes[gpu] - self.gpu_reserve_bytes[gpu], 0)


def budgets_for(hardware: Hardware) -> Budgets:
    supported = hardware.build is None or hardware.build.supports_gpu_offload
    gpus = hardware.gpus if supported else ()
    remotes = hardware.remotes
    reserves = tuple(
        max(REMOTE_RESERVE_MIN_BYTES, int(remote.total_bytes * REMOTE_RESERVE_FRACTION))
        for remote in remotes
    ) + tuple(
        APPLE_RESERVE_BYTES
        if gpu.vendor == "apple"
        else max(GPU_RESERVE_MIN_BYTES, int(gpu.total_bytes * GPU_RESERVE_FRACTION))
        for gpu in gpus
    )
    reserve = ram_reserve_bytes(hardware.ram_total_bytes)
    return Budgets(
        gpu_free_bytes=tuple(r.free_bytes for r in remotes) + tuple(g.free_bytes for g in gpus),
        gpu_reserve_bytes=reserves,
        ram_budget_bytes=max(hardware.ram_total_bytes - reserve, 0),
        unified_memory=hardware.unified_memory,
        gpu_offload_supported=bool(gpus) or bool(remotes),
        n_remote=len(remotes),
    )


def ram_reserve_bytes(ram_total_bytes: int) -> int:
    return max(RAM_RESERVE_MIN_BYTES, int(ram_total_bytes * RAM_RESERVE_FRACTION))


@dataclass(frozen=True)
class FitCheck:
    fits: bool
    over_bytes: dict[str, int]  # device -> bytes over its budget (only devices that are over)


def check_fit(estimate: MemoryEstimate, budgets: Budgets) -> FitCheck:
    over: dict[str, int] = {}
    for gpu, device in enumerate(estimate.gpus):
        excess = device.total_bytes - budgets.gpu_free_bytes[gpu]
        if excess > 0:
            over[device.device] = excess
    cpu_total = estimate.cpu.resident_bytes
    if budgets.unified_memory:
        # Metal maps the same pages: the GPU's weights/KV/compute come out of RAM too
        local = estimate.gpus[budgets.n_remote :]
        cpu_total += sum(d.total_bytes - d.reserve_bytes for d in local)
    excess = cpu_total - budgets.ram_budget_bytes
    if excess > 0:
        over["CPU"] = excess
    return FitCheck(fits=not over, over_bytes=over)
