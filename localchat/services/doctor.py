"""``localchat doctor``: the install problems users actually hit, each with the exact fix.

The checks are pure functions of a ``Facts`` record, so tests can feed them
machines we do not have (an NVIDIA GPU, an AMX-trapping VM, a full disk).
``gather_facts()`` fills ``Facts`` from this machine.
"""

from __future__ import annotations

import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from localchat.catalog import load_catalog
from localchat.errors import BackendUnavailable, LocalchatError
from localchat.hardware.amx import detect_amx
from localchat.hardware.apple import is_apple_silicon
from localchat.hardware.cpu import _sysctl, model_and_flags
from localchat.hardware.llama_build import (
    ISA_FLAG_FOR_FEATURE,
    detect_llama_build,
    first_line,
    llama_cpp_installed,
    looks_native,
    unusable_isa_features,
)
from localchat.hardware.nvidia import detect_nvidia, nvidia_hardware_present
from localchat.hardware.types import AmxStatus, GpuInfo, LlamaBuildInfo
from localchat.hub.client import hub_endpoint, is_offline
from localchat.llamacpp.rpc import RPC_REBUILD_HINT
from localchat.paths import hf_cache_dir

PIP_REINSTALL = "pip install --upgrade --force-reinstall --no-cache-dir"
CUDA_WHEEL_INDEX = "https://abetlen.github.io/llama-cpp-python/whl/cu124"
DISK_HEADROOM_BYTES = 512 * 1024 * 1024
HUB_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at; filled by ``gather_facts`` or by a test."""

    python: str = "python"  # the interpreter to reinstall into
    llama_installed: bool = True
    llama_load_error: str = ""
    build: LlamaBuildInfo | None = None
    nvidia_gpus: tuple[GpuInfo, ...] = ()
    nvidia_hardware_present: bool = False  # on the PCI bus or kernel driver loaded
    nvidia_problem: str = ""
    cpu_flags: tuple[str, ...] = ()
    cpu_flags_known: bool = False  # Linux /proc/cpuinfo was read
    amx: AmxStatus | None = None
    apple_silicon: bool = False
    rosetta: bool = False  # x86-64 Python translated on Apple Silicon
    cache_dir: Path | None = None
    disk_free_bytes: int | None = None
    disk_measured_at: Path | None = None  # the cache dir, or its nearest existing parent
    disk_is_ram: bool = False  # that filesystem is tmpfs/ramfs: its free space is memory
    hub_endpoint: str = ""
    hub_problem: str | None = None  # None: not checked; "": reachable; else why not
    default_model: str = ""
    default_model_bytes: int | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok       {self.message}"
        return f"PROBLEM  {self.message}. Fix: {self.fix}"


def _pip(facts: Facts) -> str:
    return f"{facts.python} -m {PIP_REINSTALL}"


def portable_cpu_fix(facts: Facts) -> str:
    return f'CMAKE_ARGS="-DGGML_NATIVE=OFF" {_pip(facts)} llama-cpp-python'


def cuda_fix(facts: Facts) -> str:
    version = facts.build.version if facts.build else "0.3.36"
    return (
        f'CMAKE_ARGS="-DGGML_CUDA=on" {_pip(facts)} llama-cpp-python'
        f"  (or a prebuilt wheel, Python 3.10-3.12: {_pip(facts)} --only-binary=llama-cpp-python"
        f' "llama-cpp-python=={version}" --extra-index-url {CUDA_WHEEL_INDEX},'
        " with a version that index has)"
    )


def install_fix(facts: Facts) -> str:
    """The install command that fits this machine."""
    if facts.nvidia_gpus:
        return f'CMAKE_ARGS="-DGGML_CUDA=on" {_pip(facts)} llama-cpp-python'
    if facts.apple_silicon:
        return f"{_pip(facts)} llama-cpp-python"
    return portable_cpu_fix(facts)


def check_llama_installed(facts: Facts) -> CheckResult:
    if not facts.llama_installed:
        return CheckResult(False, "llama-cpp-python is not installed", install_fix(facts))
    if facts.llama_load_error:
        message = f"llama-cpp-python is installed but does not load ({facts.llama_load_error})"
        return CheckResult(False, message, install_fix(facts))
    build = facts.build
    offload = "GPU offload" if build and build.supports_gpu_offload else "CPU only"
    devices = ", ".join(build.devices) if build and build.devices else "no devices"
    version = build.version if build else "?"
    return CheckResult(True, f"llama-cpp-python {version} loads ({offload}; devices: {devices})")


def check_cuda_build(facts: Facts) -> CheckResult | None:
    """A CPU-only llama-cpp-python on a machine with a working NVIDIA GPU."""
    if not facts.nvidia_gpus or facts.build is None:
        return None
    names = ", ".join(gpu.name for gpu in facts.nvidia_gpus)
    if facts.build.supports_gpu_offload:
        return CheckResult(True, f"llama-cpp-python can offload to the GPU ({names})")
    message = f"llama-cpp-python was built without CUDA, so {names} stays idle"
    return CheckResult(False, message, cuda_fix(facts))


def check_rpc(facts: Facts) -> CheckResult | None:
    """Whether this build can run `localchat worker` and use `--rpc` workers (a note, not a
    problem: one machine needs neither)."""
    if facts.build is None:
        return None
    if facts.build.supports_rpc:
        return CheckResult(True, "llama.cpp RPC is built in (`localchat worker`, `--rpc`)")
    fix = RPC_REBUILD_HINT.replace("pip install", f"{facts.python} -m pip install", 1)
    return CheckResult(
        True, f"llama.cpp RPC is not built in, so no `localchat worker` or `--rpc`; to {fix}"
    )


def check_cpu_instructions(facts: Facts) -> CheckResult | None:
    """A build that will die with SIGILL: AMX advertised but not allowed, or missing ISA."""
    if facts.build is None:
        return None
    features = facts.build.cpu_features
    amx = facts.amx
    if "AMX_INT8" in features and amx is not None and amx.trap:
        message = (
            "llama-cpp-python was built with AMX (a native -march=native build) and this "
            "CPU advertises AMX but the OS/VM does not allow it: the first decode will die "
            "with SIGILL (tilezero)"
        )
        return CheckResult(False, message, portable_cpu_fix(facts))
    missing = unusable_isa_features(features, facts.cpu_flags) if facts.cpu_flags_known else []
    if missing:
        message = (
            f"llama-cpp-python uses {', '.join(missing)}, which this CPU does not offer: "
            "it will die with SIGILL"
        )
        return CheckResult(False, message, portable_cpu_fix(facts))
    kind = "native/tuned" if looks_native(features) else "portable"
    isa = [feature for feature in features if feature in ISA_FLAG_FOR_FEATURE]
    amx_state = _amx_words(amx)
    return CheckResult(
        True, f"CPU can run the {kind} build ({' '.join(isa) or 'base ISA'}){amx_state}"
    )


def _amx_words(amx: AmxStatus | None) -> str:
    if amx is None:
        return ""
    if amx.trap:
        return "; AMX advertised but not usable, keep GGML_NATIVE=OFF"
    return "; AMX usable" if amx.usable else "; no AMX"


def check_nvidia_driver(facts: Facts) -> CheckResult | None:
    """An NVIDIA GPU on the bus, but NVML / nvidia-smi cannot see it."""
    if facts.nvidia_gpus:
        return CheckResult(True, f"NVIDIA driver works ({len(facts.nvidia_gpus)} GPU(s))")
    if not facts.nvidia_hardware_present:
        return CheckResult(True, "no NVIDIA GPU on this machine (PCI bus and driver checked)")
    why = facts.nvidia_problem or "NVML and nvidia-smi unavailable"
    fix = (
        "install the NVIDIA driver (Ubuntu: `sudo ubuntu-drivers install`; others: "
        "your distribution's nvidia driver package), reboot, and check that `nvidia-smi` "
        "lists the GPU"
    )
    return CheckResult(False, f"an NVIDIA GPU is present but its driver is not usable ({why})", fix)


def check_apple(facts: Facts) -> CheckResult | None:
    if facts.rosetta:
        fix = "install an arm64 Python (python.org or `brew install python`), then localchat again"
        return CheckResult(False, "Python runs as x86-64 under Rosetta, so Metal is off", fix)
    if not facts.apple_silicon or facts.build is None:
        return None
    if facts.build.supports_gpu_offload:
        return CheckResult(True, "llama-cpp-python uses Metal")
    fix = f'CMAKE_ARGS="-DGGML_METAL=on" {_pip(facts)} llama-cpp-python'
    return CheckResult(False, "llama-cpp-python was built without Metal", fix)


def check_disk(facts: Facts) -> CheckResult | None:
    """Enough free disk under the model cache for the default model."""
    if facts.disk_free_bytes is None or facts.default_model_bytes is None:
        return None
    needed_bytes = facts.default_model_bytes + DISK_HEADROOM_BYTES
    where = f"{facts.cache_dir}" if facts.cache_dir else "the model cache"
    if facts.disk_measured_at and facts.cache_dir and facts.disk_measured_at != facts.cache_dir:
        where += f" (not created yet; measured at {facts.disk_measured_at})"
    kind = "RAM-backed tmpfs (models there use memory, and vanish at reboot)"
    label = kind if facts.disk_is_ram else "disk"
    free = _gb(facts.disk_free_bytes)
    if facts.disk_free_bytes >= needed_bytes:
        need = f"default model {facts.default_model} needs {_gb(needed_bytes)}"
        return CheckResult(True, f"{label}: {free} free under {where} ({need})")
    message = (
        f"only {free} free under {where} ({label}); the default model {facts.default_model} "
        f"needs {_gb(needed_bytes)}"
    )
    fix = "free disk space there, or point HF_HUB_CACHE (or LOCALCHAT_HOME) at a larger disk"
    return CheckResult(False, message, fix)


def check_hub(facts: Facts) -> CheckResult | None:
    """The Hugging Face hub answers (downloads and remote plans need it)."""
    if facts.hub_problem is None:
        return None
    if facts.hub_problem == "offline":
        return CheckResult(True, "hub not checked: HF_HUB_OFFLINE is set (no downloads)")
    if not facts.hub_problem:
        return CheckResult(True, f"the hub answers at {facts.hub_endpoint}")
    message = f"the hub at {facts.hub_endpoint} is unreachable ({facts.hub_problem})"
    fix = (
        "check the network or proxy (HTTPS_PROXY), or HF_ENDPOINT for a mirror; until then "
        "only models on disk and the pip-installed offline model work"
    )
    return CheckResult(False, message, fix)


def _gb(size_bytes: int) -> str:
    return f"{size_bytes / 1e9:.1f} GB"


CHECKS: tuple[Callable[[Facts], CheckResult | None], ...] = (
    check_llama_installed,
    check_cpu_instructions,
    check_nvidia_driver,
    check_cuda_build,
    check_rpc,
    check_apple,
    check_disk,
    check_hub,
)


def run_checks(facts: Facts) -> list[CheckResult]:
    """Every applicable check, in a fixed order."""
    return [result for check in CHECKS if (result := check(facts)) is not None]


# ---------------------------------------------------------------- facts from this machine


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _is_ram_filesystem(path: Path) -> bool:
    resolved = str(path.resolve())
    best, fstype = "", ""
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint.rstrip("/") or "/"
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, part.fstype
    return fstype in ("tmpfs", "ramfs")


def probe_hub(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> tuple[str, str]:
    """(endpoint, problem): "" when the hub answered at all, "offline" when not asked."""
    endpoint = hub_endpoint()
    if is_offline():
        return endpoint, "offline"
    from huggingface_hub import get_session  # 0.2 s to import: only when the hub is asked

    try:
        response = get_session().get(f"{endpoint}/api/models?limit=1", timeout=timeout_s)
    except Exception as exc:  # network boundary: any transport failure is "unreachable"
        reason = " ".join(str(exc).split())[:120]
        return endpoint, f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    if response.status_code >= 500:
        return endpoint, f"HTTP {response.status_code}"
    return endpoint, ""


def _default_model_size() -> tuple[str, int | None]:
    """The catalog's default model and its smallest GGUF quant, in bytes."""
    try:
        catalog = load_catalog()
    except LocalchatError:
        return "", None
    entry = catalog.get(catalog.default_model)
    if entry is None or entry.gguf is None or not entry.gguf.quants:
        return catalog.default_model, None
    return entry.name, min(quant.size_bytes for quant in entry.gguf.quants.values())


def _running_under_rosetta() -> bool:
    if sys.platform != "darwin" or platform.machine() != "x86_64":
        return False
    return _sysctl("sysctl.proc_translated") == "1"


def gather_facts() -> Facts:
    """Read this machine (imports llama_cpp; runs the AMX probe when CPUID advertises it)."""
    build, load_error = None, ""
    try:
        build = detect_llama_build()
    except BackendUnavailable as exc:
        load_error = first_line(exc.__cause__) if exc.__cause__ else exc.message
    nvidia = detect_nvidia()
    cache_dir = hf_cache_dir()
    measured_at = _existing_parent(cache_dir)
    default_model, default_model_bytes = _default_model_size()
    hub_endpoint, hub_problem = probe_hub()
    return Facts(
        python=sys.executable,
        llama_installed=llama_cpp_installed(),
        llama_load_error=load_error,
        build=build,
        nvidia_gpus=nvidia.gpus,
        nvidia_hardware_present=nvidia_hardware_present(),
        nvidia_problem=nvidia.problem,
        cpu_flags=model_and_flags()[1],
        cpu_flags_known=sys.platform.startswith("linux"),
        amx=detect_amx(execute=True),
        apple_silicon=is_apple_silicon(),
        rosetta=_running_under_rosetta(),
        cache_dir=cache_dir,
        disk_free_bytes=shutil.disk_usage(measured_at).free,
        disk_measured_at=measured_at,
        disk_is_ram=_is_ram_filesystem(measured_at),
        hub_endpoint=hub_endpoint,
        hub_problem=hub_problem,
        default_model=default_model,
        default_model_bytes=default_model_bytes,
    )


def run_doctor() -> list[CheckResult]:
    """Every check that applies to this machine, in a fixed order."""
    return run_checks(gather_facts())
