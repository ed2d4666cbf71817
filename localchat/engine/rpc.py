"""llama.cpp's RPC backend on the client side: workers become devices of this process.

llama-cpp-python 0.3.x binds none of it, so this goes through ctypes on its own ggml
library: ``ggml_backend_reg_by_name("RPC")`` → ``ggml_backend_reg_get_proc_address(reg,
"ggml_backend_rpc_add_server")`` → ``add_server("host:port")`` → ``ggml_backend_register``.
After that a plain ``Llama(n_gpu_layers=..., tensor_split=...)`` lists the workers'
devices first (RPC0, RPC1, ...) and the local GPUs after them.

ggml cannot unregister a device, and inside ggml an unreachable worker aborts the
process, so every endpoint is probed (``hardware.rpc.probe_worker``) before it is
registered, and all registered ones before each load.  A worker lost mid-generation
also aborts inside ggml; the abort callback installed here turns that into one line
and the engine's exit code (``set_fatal_handler``), after which the process ends —
nothing can unwind through native code.  Whatever was streamed is already in history.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from localchat.errors import BackendUnavailable, LocalchatError, WorkerUnavailable
from localchat.hardware.llama_build import GGML_DEVICE_SIGNATURES, bind_ctypes

FatalHandler = Callable[[LocalchatError], NoReturn]

_registered: dict[str, int] = {}  # endpoint -> its device count, in registration order
_state: dict[str, Any] = {}  # the ctypes library and the abort callback (kept alive)


def _default_fatal(exc: LocalchatError) -> NoReturn:
    stderr = sys.__stderr__  # native calls run with sys.stderr pointed at the llama log
    if stderr is not None:
        stderr.write(f"localchat: error: {exc.one_line()}\n")
        stderr.flush()
    os._exit(exc.exit_code)


_fatal_handler: list[FatalHandler] = [_default_fatal]


def set_fatal_handler(handler: FatalHandler) -> None:
    """Who reports an error raised inside native code, where nothing can unwind
    (the CLI's one-line message); the handler must end the process."""
    _fatal_handler[0] = handler


def supports_rpc() -> bool:
    """Whether the installed llama.cpp was built with its RPC backend (``-DGGML_RPC=on``)."""
    from localchat.engine.llama import import_llama_cpp

    return bool(import_llama_cpp().llama_supports_rpc())


def require_rpc() -> None:
    from localchat.hardware.rpc import RPC_REBUILD_HINT

    if not supports_rpc():
        raise BackendUnavailable(
            "the installed llama-cpp-python was built without RPC support", hint=RPC_REBUILD_HINT
        )


def libggml() -> Any:
    """ggml as libllama sees it, with the registry functions typed.

    Not ``llama_cpp._ggml.libggml``: a wheel stores ``libggml.so`` and the
    ``libggml.so.0`` libllama links to as two files, so that is a second ggml with a
    registry of its own.  Symbols looked up through libllama's handle resolve in
    libllama's dependencies: its ggml.
    """
    if "lib" not in _state:
        from localchat.engine.llama import import_llama_cpp

        llama_cpp = import_llama_cpp()
        lib = ctypes.CDLL(llama_cpp.llama_cpp._lib._name)  # same handle, our own prototypes

        void_p, char_p, size_t = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
        registry_signatures: dict[str, tuple[list[Any], Any]] = {
            "ggml_backend_reg_by_name": ([char_p], void_p),
            "ggml_backend_reg_get_proc_address": ([void_p, char_p], void_p),
            "ggml_backend_register": ([void_p], None),
            "ggml_backend_reg_dev_count": ([void_p], size_t),
            "ggml_set_abort_callback": ([void_p], void_p),
        }
        bind_ctypes(lib, {**GGML_DEVICE_SIGNATURES, **registry_signatures})
        _state["lib"] = lib
    return _state["lib"]


def rpc_proc(name: str, prototype: Any) -> Any:
    """A function the RPC backend exports through its registry (as llama.cpp's tools do)."""
    require_rpc()
    lib = libggml()
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    address = lib.ggml_backend_reg_get_proc_address(reg, name.encode()) if reg else None
    if not address:
        raise BackendUnavailable(f"llama.cpp's RPC backend does not export {name}")
    return prototype(address)


def register_workers(endpoints: Sequence[str]) -> None:
    """Make each worker's devices devices of this process (once per endpoint).

    Probes every endpoint this process uses or has registered: llama.cpp connects to
    all registered workers at every load, and aborts on one that is gone.
    """
    if not endpoints and not _registered:
        return
    from localchat.hardware.rpc import parse_endpoint, probe_worker

    require_rpc()
    for endpoint in [*_registered, *(e for e in endpoints if e not in _registered)]:
        probe_worker(parse_endpoint(endpoint))
    add_server = rpc_proc(
        "ggml_backend_rpc_add_server", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)
    )
    lib = libggml()
    _install_abort_handler(lib)
    for endpoint in endpoints:
        if endpoint in _registered:
            continue
        reg = add_server(endpoint.encode())
        if not reg:
            raise WorkerUnavailable(f"RPC worker {endpoint} offers no devices")
        lib.ggml_backend_register(reg)
        _registered[endpoint] = int(lib.ggml_backend_reg_dev_count(reg))


def device_split(
    endpoints: Sequence[str], tensor_split: Sequence[float] | None
) -> list[float] | None:
    """The plan's split (its workers' devices, then local GPUs) laid over llama.cpp's
    device list (every worker this process registered, in order, then local GPUs):
    workers the plan does not use get nothing."""
    if not _registered:
        return list(tensor_split) if tensor_split else None
    shares = list(tensor_split) if tensor_split else [1.0]  # one offload device: all on it
    planned_remote = sum(_registered.get(endpoint, 0) for endpoint in endpoints)
    remote_shares = iter(shares[:planned_remote])
    split: list[float] = []
    for endpoint, n_devices in _registered.items():
        used = endpoint in endpoints
        split.extend(next(remote_shares, 0.0) if used else 0.0 for _ in range(n_devices))
    return split + shares[planned_remote:]


def registered_device_count() -> int:
    return sum(_registered.values())


def _install_abort_handler(lib: Any) -> None:
    if "abort_callback" in _state:
        return
    callback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_on_abort)
    _state["abort_callback"] = callback
    lib.ggml_set_abort_callback(ctypes.cast(callback, ctypes.c_void_p))


def _on_abort(message: bytes | None) -> None:
    """ggml is about to abort(): name the lost worker, report it, end the process."""
    detail = (message or b"").decode(errors="replace").strip().splitlines()
    text = detail[0] if detail else "llama.cpp aborted"
    lost = _dead_workers()
    if lost or "RPC" in text:
        which = ", ".join(lost) if lost else "one of " + ", ".join(_registered)
        error: LocalchatError = WorkerUnavailable(
            f"lost RPC worker {which} while running the model",
            hint="the reply so far is kept in history; restart the worker with `localchat worker`",
        )
    else:
        error = BackendUnavailable(f"llama.cpp aborted: {text}", hint="see `localchat doctor`")
    _fatal_handler[0](error)


def _dead_workers(attempts: int = 3) -> list[str]:
    """The registered workers nothing listens for any more (asked a few times: a worker
    that is going down may still hold its port for a moment)."""
    from localchat.hardware.rpc import parse_endpoint, worker_refuses_connections

    for attempt in range(attempts):
        lost = [e for e in _registered if worker_refuses_connections(parse_endpoint(e))]
        if lost or attempt == attempts - 1:
            return lost
        time.sleep(0.2)
    return []
