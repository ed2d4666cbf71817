"""A llama.cpp RPC worker (``localchat worker``) from llama-cpp-python's own libraries.

The RPC backend exports its server (``llamacpp.rpc.RpcRegistry.serve``), so no
separate binary is built: it serves this machine's best device (the GPU with the
most memory, else the CPU) with the local tensor cache on, so that a model's big
tensors cross the network once.  The server loop never returns; it runs in a daemon
thread (ctypes releases the GIL) while the caller waits for a signal, and the
process then ends with ``os._exit`` — the native loop cannot be stopped politely.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from localchat.addresses import Endpoint
from localchat.errors import LocalchatError
from localchat.llamacpp import Device, DeviceKind, library

READY_TIMEOUT_S = 30.0


@dataclass
class RunningWorker:
    endpoint: Endpoint
    device: Device
    cache_dir: Path
    n_threads: int
    thread: threading.Thread

    def alive(self) -> bool:
        return self.thread.is_alive()


def best_device(devices: tuple[Device, ...]) -> Device:
    """The GPU (or iGPU) with the most memory, else the CPU."""
    gpus = [d for d in devices if d.kind in (DeviceKind.GPU, DeviceKind.IGPU)]
    if gpus:
        return max(gpus, key=lambda device: device.total_bytes)
    cpu = next((d for d in devices if d.kind == DeviceKind.CPU), None)
    if cpu is None:
        raise LocalchatError("llama.cpp lists no device to serve")
    return cpu


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
    native = library().native
    native.rpc.require()
    check_port_free(endpoint)
    cache_dir.mkdir(parents=True, exist_ok=True)
    device = best_device(native.devices())
    args = (str(endpoint), cache_dir, n_threads, device)
    thread = threading.Thread(target=native.rpc.serve, args=args, name="rpc-server", daemon=True)
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
