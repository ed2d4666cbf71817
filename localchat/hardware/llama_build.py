"""What the installed llama-cpp-python build can do: GPU offload, CPU ISA, devices + memory.

Importing ``llama_cpp`` takes a while and loads the native libraries, so this
runs only when asked (``detect_hardware(include_build=True)``, ``localchat hw
--build``, ``localchat doctor``).  llama.cpp's C log never reaches the
terminal: a ctypes callback that appends to ``paths.llama_log_file()`` is
installed (the engine's ``ROUTER``) before anything can log, and file
descriptor 2 is pointed at the same file while the native code runs (C code
that ``fprintf``s to stderr bypasses the log callback).

Per-device memory is not bound in llama-cpp-python; ggml exports
``ggml_backend_dev_count/get/name/description/type/memory`` and we call them
through ctypes on ``llama_cpp._ggml.libggml`` (verified on 0.3.36).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from localchat.hardware.types import BackendDevice, LlamaBuildInfo

# enum ggml_backend_dev_type
DEVICE_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}

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

_log_state: dict[str, Any] = {}  # keeps the fd-2 log file open


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


def _log_file() -> BinaryIO | None:
    from localchat.paths import ensure_dir, llama_log_file

    if "file" not in _log_state:
        try:
            path = llama_log_file()
            ensure_dir(path.parent)
            _log_state["file"] = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open
        except OSError:
            _log_state["file"] = None
    return _log_state["file"]


def route_llama_logs() -> None:
    """Send llama.cpp / ggml log lines to the llama log file, never to the terminal.

    Uses the engine's one router (``localchat.engine.logs.ROUTER``) so that there
    is a single callback owner and the engine's load-log capture keeps working.
    """
    from localchat.engine.logs import ROUTER

    ROUTER.install()


@contextlib.contextmanager
def native_stderr_to_log(*, enabled: bool = True) -> Iterator[None]:
    """Point fd 2 at the llama log file while native code runs (C ``fprintf(stderr)``)."""
    log_file = _log_file() if enabled else None
    if log_file is None:
        yield
        return
    sys.stderr.flush()
    saved_fd = os.dup(2)
    try:
        os.dup2(log_file.fileno(), 2)
        yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)


_size_t, _void_p, _char_p = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p
# ggml's device API: name -> (argtypes, restype); the engine's RPC glue binds these too.
GGML_DEVICE_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "ggml_backend_dev_count": ([], _size_t),
    "ggml_backend_dev_get": ([_size_t], _void_p),
    "ggml_backend_dev_by_type": ([ctypes.c_int], _void_p),
    "ggml_backend_dev_name": ([_void_p], _char_p),
    "ggml_backend_dev_description": ([_void_p], _char_p),
    "ggml_backend_dev_type": ([_void_p], ctypes.c_int),
    "ggml_backend_dev_memory": ([_void_p, ctypes.POINTER(_size_t), ctypes.POINTER(_size_t)], None),
    "ggml_backend_reg_count": ([], _size_t),
}


def bind_ctypes(lib: Any, signatures: dict[str, tuple[list[Any], Any]]) -> None:
    """Give ``lib``'s functions their C prototypes."""
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype


def _load_dynamic_backends(libggml: Any, library_dir: Path) -> None:
    """Builds with GGML_BACKEND_DL register nothing until their backend libraries are loaded."""
    if libggml.ggml_backend_reg_count() > 0:
        return
    load_all = getattr(libggml, "ggml_backend_load_all_from_path", None)
    if load_all is not None:
        load_all.argtypes = [ctypes.c_char_p]
        load_all.restype = None
        load_all(str(library_dir).encode())


def _device(libggml: Any, index: int) -> BackendDevice:
    handle = libggml.ggml_backend_dev_get(index)
    free_bytes, total_bytes = ctypes.c_size_t(0), ctypes.c_size_t(0)
    libggml.ggml_backend_dev_memory(handle, ctypes.byref(free_bytes), ctypes.byref(total_bytes))
    return BackendDevice(
        name=(libggml.ggml_backend_dev_name(handle) or b"").decode(errors="replace"),
        description=(libggml.ggml_backend_dev_description(handle) or b"").decode(errors="replace"),
        kind=DEVICE_KINDS.get(libggml.ggml_backend_dev_type(handle), "other"),
        free_bytes=int(free_bytes.value),
        total_bytes=int(total_bytes.value),
    )


def backend_devices(library_dir: Path) -> tuple[BackendDevice, ...]:
    """ggml's devices with their memory; () when the symbols are missing."""
    try:
        from llama_cpp._ggml import libggml

        bind_ctypes(libggml, GGML_DEVICE_SIGNATURES)
        _load_dynamic_backends(libggml, library_dir)
        count = int(libggml.ggml_backend_dev_count())
        return tuple(_device(libggml, index) for index in range(count))
    except (ImportError, AttributeError, OSError):
        return ()


def detect_llama_build(*, capture_native_stderr: bool = True) -> LlamaBuildInfo | None:
    """What the installed llama-cpp-python can do; None when it is not installed.

    ``capture_native_stderr`` points fd 2 at the llama log while native code runs;
    pass False while a full-screen app (Textual draws on stderr) owns the terminal.
    Raises ``BackendUnavailable`` when it is installed but its libraries fail to load.
    """
    if not llama_cpp_installed():
        return None
    from localchat.errors import BackendUnavailable

    try:
        with native_stderr_to_log(enabled=capture_native_stderr):
            import llama_cpp

            route_llama_logs()
            library_dir = Path(llama_cpp.__file__).parent / "lib"
            system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
            devices = backend_devices(library_dir)
            supports_rpc = bool(llama_cpp.llama_supports_rpc())
            supports_offload = _supports_local_offload(llama_cpp, devices, supports_rpc)
    except (ImportError, OSError, RuntimeError, AttributeError) as exc:
        raise BackendUnavailable(
            f"llama-cpp-python is installed but does not load: {first_line(exc)}",
            hint="reinstall it; see packaging/README.md",
        ) from exc
    return LlamaBuildInfo(
        version=str(getattr(llama_cpp, "__version__", "unknown")),
        supports_gpu_offload=supports_offload,
        devices=tuple(device.name for device in devices),
        system_info=system_info.strip(),
        cpu_features=compiled_cpu_features(system_info),
        device_memory=devices,
        library_dir=str(library_dir),
        supports_rpc=supports_rpc,
    )


def _supports_local_offload(llama_cpp: Any, devices: tuple[BackendDevice, ...], rpc: bool) -> bool:
    """A local GPU llama.cpp can use.  ``llama_supports_gpu_offload()`` is also true for a
    CPU build with RPC (a worker is a device), so with RPC look at the devices themselves."""
    if devices:
        return any(device.kind in ("gpu", "igpu") for device in devices)
    return bool(llama_cpp.llama_supports_gpu_offload()) and not rpc
