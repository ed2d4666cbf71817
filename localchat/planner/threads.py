"""How many CPU threads llama.cpp should run: decode and prompt processing apart.

Decoding a token is a chain of matrix-vector products: memory-bound, with a thread
barrier after every op, so a thread on a slow core (an E-core of a hybrid CPU) or on a
core shared with SMT makes every op wait.  Prompt processing is matrix-matrix work:
compute-bound and split in small chunks, so every physical core helps.  Hence:

* decode threads = physical performance cores (all physical cores when they are alike);
* batch threads = all physical cores;
* with layers offloaded to a GPU, one core is left to the GPU driver (on machines with
  more than two cores, where that costs little);
* cores other programs keep busy when the model loads are left to them: a preempted
  thread stalls every other one at the next op (on a 2-core machine with one core busy,
  2 threads decoded 5x slower than 1 in ``bench/speed.py``).

llama.cpp's own tools default to the physical core count; llama-cpp-python's
default (``cpu_count() // 2``) runs one thread on a 2-core machine.
``bench/speed.py`` checks the choice against a sweep of 1..cores on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.errors import ConfigError
from localchat.hardware.types import CpuInfo

MIN_CORES_TO_SPARE_ONE = 3  # below this, a core kept for the GPU driver costs too much
MAX_THREADS = 1024


@dataclass(frozen=True)
class ThreadChoice:
    n_threads: int  # decode (one token at a time)
    n_threads_batch: int  # prompt processing (batches of tokens)
    source: str  # why: "2 physical cores", "--threads", ...


def choose_threads(
    cpu: CpuInfo,
    *,
    n_gpu_layers: int = 0,
    requested: int | None = None,
    requested_source: str = "asked for (--threads or settings.toml threads)",
) -> ThreadChoice:
    """The thread counts for ``cpu``; ``requested`` (the user's) wins for both."""
    if requested is not None:
        check_threads(requested, requested_source)
        return ThreadChoice(requested, requested, requested_source)
    physical = max(cpu.physical_cores, 1)
    performance = cpu.performance_cores if 0 < cpu.performance_cores < physical else 0
    decode = performance or physical
    batch = physical
    why = (
        f"{performance} performance cores of {physical}"
        if performance
        else f"{physical} physical cores"
    )
    if n_gpu_layers > 0 and physical >= MIN_CORES_TO_SPARE_ONE:
        decode, batch = max(decode - 1, 1), max(batch - 1, 1)
        why += ", one left to the GPU driver"
    free = max(cpu.logical_cores - cpu.busy_cores, 1)
    if cpu.busy_cores and free < batch:
        decode, batch = min(decode, free), free
        why += f", {cpu.busy_cores} busy with other programs"
    return ThreadChoice(decode, batch, why)


def check_threads(value: int, source: str = "--threads") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ConfigError(f"{source} must be a whole number from 1 to {MAX_THREADS}, not {value!r}")
    return value
