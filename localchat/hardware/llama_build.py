"""What the installed llama-cpp-python build can do: GPU offload, CPU ISA, devices + memory.

Loading llama.cpp takes a while, so this runs only when asked
(``detect_hardware(include_build=True)``, ``localchat hw --build``, ``localchat doctor``).
Everything native goes through the one library object (``localchat.llamacpp``): its
log callback keeps llama.cpp's C log off the terminal, and file descriptor 2 is pointed
at the log file while the library first loads (C code that ``fprintf``s to stderr
bypasses the log callback).  Devices and their memory are ggml's own
(``ggml_backend_dev_*``), read through libllama's ggml, so RPC workers registered in
this process are among them.
"""

from __future__ import annotations

import importlib.util

from localchat.errors import BackendUnavailable
from localchat.hardware.types import BackendDevice, LlamaBuildInfo
from localchat.llamacpp import Device, library

# system_info keys (CPU section) that are instruction sets, with the Linux
# /proc/cpuinfo flag that must be present to execute them.
ISA_FLAG_FOR_FEATURE = {
    "SSE3": "sse3",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
# What a portable x86-64 build (GGML_NATIVE=OFF) compiles in; more means -march=native
# or explicit GGML_AVX512/GGML_AMX_* options.
PORTABLE_X86_FEATURES = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})


def first_line(exc: BaseException) -> str:
    """An exception as one short line: its message's first line, else its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``"CPU : AVX2 = 1 | LLAMAFILE = 1 | CUDA : ARCHS = 890 |"`` -> {section: {key: value}}."""
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for token in text.split("|"):
        token = token.strip()
        if " : " in token:
            current, _, token = token.partition(" : ")
            current = current.strip()
            token = token.strip()
        key, sep, value = token.partition("=")
        if sep and key.strip():
            sections.setdefault(current, {})[key.strip()] = value.strip()
    return sections


def compiled_cpu_features(system_info: str) -> tuple[str, ...]:
    """CPU features the build was compiled with (value "1" in the CPU section)."""
    cpu = parse_system_info(system_info).get("CPU", {})
    return tuple(key for key, value in cpu.items() if value == "1")


def unusable_isa_features(build_features: tuple[str, ...], cpu_flags: tuple[str, ...]) -> list[str]:
    """Instruction sets compiled into the build that this CPU/OS does not offer (SIGILL risk)."""
    return [
        feature
        for feature in build_features
        if feature in ISA_FLAG_FOR_FEATURE and ISA_FLAG_FOR_FEATURE[feature] not in cpu_flags
    ]


def looks_native(build_features: tuple[str, ...]) -> bool:
    """True when an x86 build has more than the portable set (native or hand-tuned)."""
    isa = {feature for feature in build_features if feature in ISA_FLAG_FOR_FEATURE}
    return bool(isa - PORTABLE_X86_FEATURES)


def backend_device(device: Device) -> BackendDevice:
    return BackendDevice(
        name=device.name,
        description=device.description,
        kind=device.kind_label,
        free_bytes=device.free_bytes,
        total_bytes=device.total_bytes,
    )


def detect_llama_build(*, capture_native_stderr: bool = True) -> LlamaBuildInfo | None:
    """What the installed llama-cpp-python can do; None when it is not installed.

    ``capture_native_stderr`` points fd 2 at the llama log while the library first
    loads; pass False while a full-screen app (Textual draws on stderr) owns the
    terminal.  Raises ``BackendUnavailable`` when it is installed but its libraries
    fail to load.
    """
    if not llama_cpp_installed():
        return None
    lib = library()
    try:
        native = lib.load(capture_native_stderr=capture_native_stderr)
        with lib.log.native_stderr(enabled=capture_native_stderr):
            system_info = native.system_info()
            devices = tuple(backend_device(device) for device in native.devices())
            supports_offload = _supports_local_offload(
                devices, native.supports_gpu_offload(), native.rpc.supported
            )
    except (BackendUnavailable, OSError, RuntimeError, AttributeError) as exc:
        cause = exc.__cause__ if isinstance(exc, BackendUnavailable) and exc.__cause__ else exc
        raise BackendUnavailable(
            f"llama-cpp-python is installed but does not load: {first_line(cause)}",
            hint="reinstall it; see packaging/README.md",
        ) from cause
    return LlamaBuildInfo(
        version=native.version,
        supports_gpu_offload=supports_offload,
        devices=tuple(device.name for device in devices),
        system_info=system_info.strip(),
        cpu_features=compiled_cpu_features(system_info),
        device_memory=devices,
        library_dir=str(native.library_dir),
        supports_rpc=native.rpc.supported,
    )


def _supports_local_offload(
    devices: tuple[BackendDevice, ...], gpu_offload: bool, rpc: bool
) -> bool:
    """A local GPU llama.cpp can use.  ``llama_supports_gpu_offload()`` is also true for a
    CPU build with RPC (a worker is a device), so with RPC look at the devices themselves."""
    if devices:
        return any(device.kind in ("gpu", "igpu") for device in devices)
    return gpu_offload and not rpc
