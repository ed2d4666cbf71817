"""llama.cpp loaded: the callbacks native code calls, ggml's device API, the build's facts.

Created once, by ``library().native``.  Every ctypes callback is an attribute of this
object, so it lives as long as the process's llama.cpp (a load abandoned after Ctrl-C
may still call the progress callback; ggml may log from any thread at any time).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from localchat.llamacpp._bindings import C, package
from localchat.llamacpp.ggml import AbortCallback, Device, DeviceKind, GgmlApi
from localchat.llamacpp.rpc import RpcRegistry

if TYPE_CHECKING:
    from localchat.llamacpp.library import LlamaCppLibrary


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


class NativeLibrary:
    """libllama and its ggml, with localchat's callbacks installed."""

    def __init__(self, owner: LlamaCppLibrary) -> None:
        self.version = str(getattr(package, "__version__", "unknown"))
        self.library_dir = Path(package.__file__ or ".").parent / "lib"
        self.library_path = _loaded_libllama_path(self.library_dir)
        self.ggml = GgmlApi(self.library_path)
        self.ggml.load_backends(str(self.library_dir))
        C.llama_backend_init()
        self._log_callback = C.llama_log_callback(
            lambda _level, text, _user_data: owner.log.on_native_line(text)
        )
        C.llama_log_set(self._log_callback, ctypes.c_void_p(0))
        self.progress_callback = C.llama_progress_callback(
            lambda _progress, _user_data: owner.keep_loading()
        )
        self._abort_callback = AbortCallback(owner.on_abort)
        self._abort_installed = False
        self.rpc = RpcRegistry(self.ggml, supported=bool(C.llama_supports_rpc()))

    def install_abort_handler(self) -> None:
        """From now on an abort inside ggml is reported in one line (the library's fatal
        handler) instead of killing the process with SIGABRT.  Not in the first-load
        probe's child, whose crash is the answer."""
        if not self._abort_installed:
            self.ggml.set_abort_callback(self._abort_callback)
            self._abort_installed = True

    def system_info(self) -> str:
        return (C.llama_print_system_info() or b"").decode(errors="replace")

    def devices(self) -> tuple[Device, ...]:
        """ggml's devices with their memory, registered RPC workers' included."""
        return self.ggml.devices()

    def supports_gpu_offload(self) -> bool:
        return bool(C.llama_supports_gpu_offload())

    def cpu_buffer_type(self) -> int:
        """The CPU device's buffer type, for tensors kept in RAM (``--n-cpu-moe``)."""
        device = self.ggml.device_of_kind(DeviceKind.CPU)
        buffer_type = self.ggml.buffer_type(device) if device is not None else 0
        if not buffer_type:
            raise RuntimeError("llama.cpp has no CPU device")
        return buffer_type

    def max_devices(self) -> int:
        return int(C.llama_max_devices())


def _loaded_libllama_path(library_dir: Path) -> str:
    """The path libllama was loaded from, so that our handle is the same library (a
    different file of the same name would map a second copy with its own state)."""
    if sys.platform != "win32":
        info = _DlInfo()
        libc = ctypes.CDLL(None)
        symbol = ctypes.cast(C.llama_backend_init, ctypes.c_void_p)
        if libc.dladdr(symbol, ctypes.byref(info)) and info.dli_fname:
            return str(info.dli_fname.decode())
    return str(library_dir / "llama.dll")
