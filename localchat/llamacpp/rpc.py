"""llama.cpp's RPC backend through ggml's registry: add workers as devices, or serve one.

llama-cpp-python binds none of it; as llama.cpp's own tools do, the functions come from
the RPC backend's registry: ``ggml_backend_reg_by_name("RPC")`` →
``ggml_backend_reg_get_proc_address(reg, name)``.  ``add_server("host:port")`` returns
a registry of the worker's devices, which ``ggml_backend_register`` makes devices of
this process (listed before the local GPUs).  ggml cannot unregister one, so the
registry remembers every endpoint it added, in order.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Mapping
from pathlib import Path

from localchat.errors import BackendUnavailable, WorkerUnavailable
from localchat.llamacpp.ggml import Device, GgmlApi

RPC_REBUILD_HINT = (
    'rebuild it with RPC: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_RPC=on" pip install '
    "--no-cache-dir --force-reinstall --no-deps llama-cpp-python (without --no-cache-dir "
    "pip reuses the wheel it built before)"
)

# ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint)
_AddServer = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)
# void ggml_backend_rpc_start_server(endpoint, cache_dir, n_threads, n_devices, devices[])
_StartServer = ctypes.CFUNCTYPE(
    None,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_void_p),
)


class RpcRegistry:
    """The RPC workers this process registered, and the calls that add or serve one."""

    def __init__(self, ggml: GgmlApi, *, supported: bool) -> None:
        self._ggml = ggml
        self.supported = supported  # built with -DGGML_RPC=on
        self._registered: dict[str, int] = {}  # endpoint -> its devices, in order
        self._lock = threading.Lock()

    @property
    def registered(self) -> Mapping[str, int]:
        """Endpoint -> how many devices it brought, in registration (= device) order."""
        return dict(self._registered)

    def require(self) -> None:
        if not self.supported:
            raise BackendUnavailable(
                "the installed llama-cpp-python was built without RPC support",
                hint=RPC_REBUILD_HINT,
            )

    def add_server(self, endpoint: str) -> int:
        """Register ``endpoint``'s devices (once); how many it has.  Probe it first:
        inside ggml an unreachable worker aborts the process."""
        with self._lock:
            if endpoint in self._registered:
                return self._registered[endpoint]
            add_server = _AddServer(self._function("ggml_backend_rpc_add_server"))
            registry = add_server(endpoint.encode())
            if not registry:
                raise WorkerUnavailable(f"RPC worker {endpoint} offers no devices")
            self._registered[endpoint] = self._ggml.register(int(registry))
            return self._registered[endpoint]

    def serve(self, endpoint: str, cache_dir: Path, n_threads: int, device: Device) -> None:
        """Serve ``device`` on ``endpoint``; never returns (run it in a daemon thread)."""
        start_server = _StartServer(self._function("ggml_backend_rpc_start_server"))
        devices = (ctypes.c_void_p * 1)(device.handle)
        start_server(endpoint.encode(), str(cache_dir).encode(), max(n_threads, 1), 1, devices)

    def _function(self, name: str) -> int:
        self.require()
        registry = self._ggml.registry("RPC")
        address = self._ggml.registry_function(registry, name) if registry else 0
        if not address:
            raise BackendUnavailable(f"llama.cpp's RPC backend does not export {name}")
        return address
