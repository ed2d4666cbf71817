"""A llama.cpp RPC worker (``localchat worker``) from llama-cpp-python's own libraries.

The RPC backend exports its server (``ggml_backend_rpc_start_server``), so no
separate binary is built: it serves this machine's best device (the GPU with the
most memory, else the CPU) with the local tensor cache on, so that a model's big
tensors cross the network once.  The server loop never returns; it runs in a daemon
thread (ctypes releases the GIL) while the caller waits for a signal, and the
process then ends with ``os._exit`` — the native loop cannot be stopped politely.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localchat.engine.rpc import libggml, require_rpc, rpc_proc
from localchat.errors import LocalchatError
from localchat.hardware.rpc import Endpoint

# enum ggml_backend_dev_type
DEVICE_CPU, DEVICE_GPU, DEVICE_IGPU = 0, 1, 2
READY_TIMEOUT_S = 30.0

_StartServer = ctypes.CFUNCTYPE(
    None,
    ctypes.c_char_p,  # endpoint "host:port"
    ctypes.c_char_p,  # cache dir, or NULL
    ctypes.c_size_t,  # threads for a CPU device
    ctypes.c_size_t,  # number of devices
    ctypes.POINTER(ctypes.c_void_p),  # ggml_backend_dev_t devices[]
)


@dataclass(frozen=True)
class ServedDevice:
    name: str  # "CPU", "CUDA0", ...
    description: str
    kind: str  # "cpu", "gpu", "igpu"
    free_bytes: int
    total_bytes: int


@dataclass
class RunningWorker:
    endpoint: Endpoint
    device: ServedDevice
    cache_dir: Path
    n_threads: int
    thread: threading.Thread

    def alive(self) -> bool:
        return self.thread.is_alive()


def best_device() -> tuple[Any, ServedDevice]:
    """The GPU (or iGPU) with the most memory, else the CPU: ``(handle, description)``."""
    lib = libggml()
    best: tuple[Any, ServedDevice] | None = None
    for index in range(int(lib.ggml_backend_dev_count())):
        handle = lib.ggml_backend_dev_get(index)
        kind = int(lib.ggml_backend_dev_type(handle))
        if kind not in (DEVICE_GPU, DEVICE_IGPU):
            continue
        device = _describe(lib, handle, "gpu" if kind == DEVICE_GPU else "igpu")
        if best is None or device.total_bytes > best[1].total_bytes:
            best = (handle, device)
    if best is not None:
        return best
    handle = lib.ggml_backend_dev_by_type(DEVICE_CPU)
    if not handle:
        raise LocalchatError("llama.cpp lists no device to serve")
    return handle, _describe(lib, handle, "cpu")


def _describe(lib: Any, handle: Any, kind: str) -> ServedDevice:
    free_bytes, total_bytes = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(handle, ctypes.byref(free_bytes), ctypes.byref(total_bytes))
    return ServedDevice(
        name=(lib.ggml_backend_dev_name(handle) or b"").decode(errors="replace"),
        description=(lib.ggml_backend_dev_description(handle) or b"").decode(errors="replace"),
        kind=kind,
        free_bytes=int(free_bytes.value),
        total_bytes=int(total_bytes.value),
    )


def check_port_free(endpoint: Endpoint) -> None:
    """A clear error now rather than ggml's "Failed to create server socket" later."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((endpoint.host, endpoint.port))
    except OSError as exc:
        raise LocalchatError(
            f"cannot listen on {endpoint}: {exc.strerror or exc}",
            hint="choose another --port, or stop what uses it",
        ) from None


def start_worker(endpoint: Endpoint, cache_dir: Path, n_threads: int) -> RunningWorker:
    """Start serving in a daemon thread; returns once the port accepts connections."""
    require_rpc()
    check_port_free(endpoint)
    cache_dir.mkdir(parents=True, exist_ok=True)
    start_server = rpc_proc("ggml_backend_rpc_start_server", _StartServer)
    handle, device = best_device()
    devices = (ctypes.c_void_p * 1)(handle)
    args = (str(endpoint).encode(), str(cache_dir).encode(), max(n_threads, 1), 1, devices)
    thread = threading.Thread(target=start_server, args=args, name="rpc-server", daemon=True)
    thread.start()
    worker = RunningWorker(endpoint, device, cache_dir, max(n_threads, 1), thread)
    _wait_until_listening(worker)
    return worker


def _wait_until_listening(worker: RunningWorker) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not worker.alive():
            raise LocalchatError(
                f"the RPC server on {worker.endpoint} stopped at start",
                hint="see the llama.cpp log (`localchat doctor` shows where it is)",
            )
        address = (worker.endpoint.host, worker.endpoint.port)
        # the server takes this as a client that leaves before saying HELLO
        with contextlib.suppress(OSError), socket.create_connection(address, 0.5):
            return
        time.sleep(0.05)
    raise LocalchatError(f"the RPC server on {worker.endpoint} did not start listening")


def redirect_native_stdout(path: Path) -> None:
    """Point fd 1 (where ggml's server ``printf``s) at ``path``; Python's ``sys.stdout``
    keeps the terminal.  For a worker process, which ends with ``os._exit``."""
    sys.stdout.flush()
    terminal_fd = os.dup(1)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.close(log_fd)
    sys.stdout = open(terminal_fd, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
