"""ggml's device and registry API, typed, on the ggml that libllama itself uses.

llama-cpp-python binds none of it.  Its ``llama_cpp._ggml.libggml`` is *not* that ggml:
the wheel stores ``libggml.so`` and ``libggml.so.0`` (libllama's dependency) as two
files, so loading the first by path maps a second copy with a device registry of its
own (``tests/integration/test_llamacpp_library.py`` proves it).  Symbols looked up
through libllama's handle resolve in libllama's dependencies: its ggml.  The CPU
backend (``libggml-cpu``) is one shared copy either way, so a CPU buffer type read
through the other copy happened to be right; a device registered there was not seen.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from enum import IntEnum

_size_t, _void_p, _char_p = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p

# name -> (argtypes, restype)
_PROTOTYPES: dict[str, tuple[list[type], type | None]] = {
    "ggml_backend_dev_count": ([], _size_t),
    "ggml_backend_dev_get": ([_size_t], _void_p),
    "ggml_backend_dev_by_type": ([ctypes.c_int], _void_p),
    "ggml_backend_dev_name": ([_void_p], _char_p),
    "ggml_backend_dev_description": ([_void_p], _char_p),
    "ggml_backend_dev_type": ([_void_p], ctypes.c_int),
    "ggml_backend_dev_memory": ([_void_p, ctypes.POINTER(_size_t), ctypes.POINTER(_size_t)], None),
    "ggml_backend_dev_buffer_type": ([_void_p], _void_p),
    "ggml_backend_device_register": ([_void_p], None),
    "ggml_backend_reg_count": ([], _size_t),
    "ggml_backend_reg_by_name": ([_char_p], _void_p),
    "ggml_backend_reg_get_proc_address": ([_void_p, _char_p], _void_p),
    "ggml_backend_register": ([_void_p], None),
    "ggml_backend_reg_dev_count": ([_void_p], _size_t),
    "ggml_set_abort_callback": ([_void_p], _void_p),
}
_OPTIONAL = {"ggml_backend_load_all_from_path": ([_char_p], None)}  # GGML_BACKEND_DL builds

# ggml's abort callback: void (*)(const char * message)
AbortCallback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


class DeviceKind(IntEnum):
    """``enum ggml_backend_dev_type``."""

    CPU = 0
    GPU = 1
    IGPU = 2
    ACCEL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# ``enum ggml_type`` values of the KV cache types llama.cpp accepts
GGML_TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}


@dataclass(frozen=True)
class Device:
    """One ggml backend device, as ``llama-cli --list-devices`` shows it."""

    name: str  # "CUDA0", "MTL0", "RPC0", "CPU"
    description: str
    kind: DeviceKind | None  # None: a type this code does not know
    free_bytes: int
    total_bytes: int
    handle: int = field(default=0, compare=False, repr=False)  # ggml_backend_dev_t

    @property
    def kind_label(self) -> str:
        return self.kind.label if self.kind is not None else "other"


class GgmlApi:
    """ggml's registry functions through libllama's handle, with their C prototypes."""

    def __init__(self, library_path: str) -> None:
        self._lib = ctypes.CDLL(library_path)  # the handle libllama is loaded as
        for name, (argtypes, restype) in _PROTOTYPES.items():
            function = getattr(self._lib, name)
            function.argtypes, function.restype = argtypes, restype
        self._load_all = getattr(self._lib, "ggml_backend_load_all_from_path", None)
        if self._load_all is not None:
            self._load_all.argtypes, self._load_all.restype = _OPTIONAL[
                "ggml_backend_load_all_from_path"
            ]

    def load_backends(self, library_dir: str) -> None:
        """Builds with GGML_BACKEND_DL register nothing until their backends are loaded."""
        if int(self._lib.ggml_backend_reg_count()) == 0 and self._load_all is not None:
            self._load_all(library_dir.encode())

    def function_address(self, name: str) -> int:
        """Where ``name`` resolved through this handle (two ggml copies differ here)."""
        return int(ctypes.cast(getattr(self._lib, name), ctypes.c_void_p).value or 0)

    def device_count(self) -> int:
        return int(self._lib.ggml_backend_dev_count())

    def devices(self) -> tuple[Device, ...]:
        return tuple(self.device(index) for index in range(self.device_count()))

    def device(self, index: int) -> Device:
        return self.describe(int(self._lib.ggml_backend_dev_get(index) or 0))

    def device_of_kind(self, kind: DeviceKind) -> Device | None:
        handle = self._lib.ggml_backend_dev_by_type(int(kind))
        return self.describe(int(handle)) if handle else None

    def describe(self, handle: int) -> Device:
        free_bytes, total_bytes = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._lib.ggml_backend_dev_memory(
            handle, ctypes.byref(free_bytes), ctypes.byref(total_bytes)
        )
        kind = int(self._lib.ggml_backend_dev_type(handle))
        return Device(
            name=_text(self._lib.ggml_backend_dev_name(handle)),
            description=_text(self._lib.ggml_backend_dev_description(handle)),
            kind=DeviceKind(kind) if kind in DeviceKind._value2member_map_ else None,
            free_bytes=int(free_bytes.value),
            total_bytes=int(total_bytes.value),
            handle=handle,
        )

    def buffer_type(self, device: Device) -> int:
        """The device's default buffer type (``ggml_backend_buffer_type_t``)."""
        return int(self._lib.ggml_backend_dev_buffer_type(device.handle) or 0)

    def register_device(self, device: Device) -> None:
        self._lib.ggml_backend_device_register(device.handle)

    def registry(self, name: str) -> int:
        """``ggml_backend_reg_t`` of a backend by name ("RPC", "CPU"), 0 when absent."""
        return int(self._lib.ggml_backend_reg_by_name(name.encode()) or 0)

    def registry_function(self, registry: int, name: str) -> int:
        """A function a backend exports through its registry, 0 when it does not."""
        return int(self._lib.ggml_backend_reg_get_proc_address(registry, name.encode()) or 0)

    def register(self, registry: int) -> int:
        """Add a backend registry's devices to ggml's; how many it brought."""
        self._lib.ggml_backend_register(registry)
        return int(self._lib.ggml_backend_reg_dev_count(registry))

    def set_abort_callback(self, callback: ctypes._CFunctionType) -> None:
        self._lib.ggml_set_abort_callback(ctypes.cast(callback, ctypes.c_void_p))


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")
