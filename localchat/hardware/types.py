"""What the machine has, as plain data.  Filled by ``detect_hardware()`` or by what-if options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GpuVendor = Literal["nvidia", "amd", "apple", "other"]


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    vendor: GpuVendor
    total_bytes: int
    free_bytes: int
    bandwidth_bytes_per_s: float | None = None  # known per device family, or measured
    source: str = ""  # "nvml", "nvidia-smi", "metal", "rocm-smi", "ggml", "what-if"
    compute_capability: str = ""  # NVIDIA only, e.g. "8.9"; CUDA 12 wheels need >= 6.0
    driver_version: str = ""


@dataclass(frozen=True)
class AmxStatus:
    """Whether Intel AMX tiles can really be used here (Linux x86-64 only).

    Many VMs show AMX in CPUID while the hypervisor or kernel does not let a
    process use it; a llama.cpp built with ``-march=native`` (GGML_NATIVE, the
    default) then dies with SIGILL at ``tilezero`` on the first quantized decode.
    """

    cpuid_advertises: bool  # CPUID.(7,0):EDX bit 24 (amx-tile): what -march=native sees
    os_enabled: bool  # XCR0 bits 17+18 (XTILECFG, XTILEDATA) set by the kernel
    permitted: bool | None  # arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded
    executes: bool | None = None  # a real tilezero ran in a child process; None: not tried

    @property
    def usable(self) -> bool:
        if not (self.cpuid_advertises and self.os_enabled and self.permitted):
            return False
        return self.executes is not False

    @property
    def trap(self) -> bool:
        """Advertised by the CPU but not usable: native builds will SIGILL."""
        return self.cpuid_advertises and not self.usable


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    physical_cores: int
    logical_cores: int
    features: tuple[str, ...] = ()  # lower-case ISA flags we care about: avx2, avx512f, amx_tile
    bandwidth_bytes_per_s: float | None = None
    arch: str = ""  # platform.machine(): "x86_64", "arm64", ...
    bandwidth_source: str = ""  # "estimate: ...", "measured: ...", "apple: ...", "what-if"
    amx: AmxStatus | None = None  # None: not x86-64 Linux, or not probed
    performance_cores: int = 0  # physical P-cores of a hybrid CPU; 0 = all cores alike
    busy_cores: int = 0  # cores other programs kept busy when detected (what-if: 0)


@dataclass(frozen=True)
class BackendDevice:
    """One ggml backend device of the installed llama.cpp, as ``--list-devices`` shows it."""

    name: str  # "CUDA0", "MTL0", "Vulkan0", "CPU"
    description: str
    kind: str  # "cpu", "gpu", "igpu", "accel"
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class LlamaBuildInfo:
    """What the installed llama-cpp-python can do."""

    version: str
    supports_gpu_offload: bool
    devices: tuple[str, ...] = ()  # ggml backend device names, e.g. ("CUDA0", "CPU")
    system_info: str = ""
    cpu_features: tuple[str, ...] = ()  # compiled in, from system_info: "AVX2", "AMX_INT8", ...
    device_memory: tuple[BackendDevice, ...] = ()  # ggml_backend_dev_memory per device
    library_dir: str = ""  # where libllama / libggml were loaded from
    supports_rpc: bool = False  # built with -DGGML_RPC=on: `localchat worker`, `--rpc`


@dataclass(frozen=True)
class RemoteDevice:
    """A device of a llama.cpp RPC worker (``--rpc host:port``), or a what-if one (``--remote``).

    llama.cpp lists RPC devices before local GPUs, in the order the endpoints were given.
    """

    endpoint: str  # "host:port"; "what-if" for --remote
    index: int  # the device's index on its worker
    total_bytes: int
    free_bytes: int
    link_bytes_per_s: float  # the network between this machine and the worker
    link_latency_s: float  # one request/response round trip
    bandwidth_bytes_per_s: float | None = None  # memory bandwidth; None = unknown
    loopback: bool = False  # a worker on this machine (shares its RAM and cores)
    source: str = "rpc"  # "rpc" (asked the worker) or "what-if"


@dataclass(frozen=True)
class Hardware:
    cpu: CpuInfo
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: tuple[GpuInfo, ...] = ()
    unified_memory: bool = False  # Apple Silicon: GPU budget is carved out of RAM
    build: LlamaBuildInfo | None = None
    notes: tuple[str, ...] = field(default=())  # e.g. "Metal budget estimated as 70% of RAM"
    what_if: bool = False
    remotes: tuple[RemoteDevice, ...] = ()  # RPC workers' devices, in llama.cpp's order

    @property
    def total_vram_free_bytes(self) -> int:
        return sum(gpu.free_bytes for gpu in self.gpus)
