"""Remote llama.cpp RPC workers as hardware: endpoints, link speed, and a bounded probe.

A worker (``localchat worker``, or llama.cpp's ``rpc-server``) serves one client at
a time over TCP.  Before llama.cpp connects to one, it must be known to answer:
inside ggml an unreachable endpoint, a version mismatch or a busy worker either
aborts the whole process or blocks it forever.  ``probe_worker`` therefore speaks
the first messages of the protocol itself, with a timeout, and asks each device on
the worker for its free and total memory — what the planner needs — without
loading llama.cpp.

Wire format (ggml-rpc.h / ggml-rpc.cpp, protocol version 7): a request is
``cmd (u8) | size (u64 LE) | data``; a response is ``size (u64 LE) | data``.
HELLO must come first; its request carries 24 bytes of transport capabilities
(all zero: plain TCP) and its response ``major, minor, patch, pad`` plus 24 bytes.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from dataclasses import dataclass

from localchat.addresses import (
    DEFAULT_LINK_BYTES_PER_S,
    Endpoint,
    parse_endpoints,
    parse_link,
)
from localchat.errors import BackendUnavailable, WorkerUnavailable
from localchat.hardware.types import Hardware, RemoteDevice
from localchat.llamacpp.rpc import RPC_REBUILD_HINT

PROBE_TIMEOUT_S = 3.0
NETWORK_LATENCY_S = 300e-6  # a LAN round trip through the worker's request loop
LOOPBACK_LINK_BYTES_PER_S = 2e9  # 127.0.0.1: a memory copy through the kernel, not a wire
LOOPBACK_LATENCY_S = 50e-6

RPC_PROTO_MAJOR = 7
RPC_CONN_CAPS_BYTES = 24
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
MAX_DEVICES_PER_WORKER = 16  # GGML_RPC_MAX_SERVERS bounds what a client accepts


@dataclass(frozen=True)
class WorkerDeviceMemory:
    index: int  # the device's index on its worker
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class WorkerInfo:
    endpoint: Endpoint
    version: tuple[int, int, int]
    devices: tuple[WorkerDeviceMemory, ...]


def probe_worker(endpoint: Endpoint, timeout_s: float = PROBE_TIMEOUT_S) -> WorkerInfo:
    """Connect, say HELLO, read each device's memory, disconnect; bounded by ``timeout_s``.

    Raises ``WorkerUnavailable`` naming the endpoint when nothing listens there, the
    worker does not answer in time (it serves one client at a time), or it speaks
    another protocol version.
    """
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            version = _hello(sock, endpoint)
            count = struct.unpack("<I", _call(sock, CMD_DEVICE_COUNT, b"", 4))[0]
            if not 0 < count <= MAX_DEVICES_PER_WORKER:
                raise _unavailable(endpoint, f"it reports {count} devices")
            devices = tuple(_device_memory(sock, index) for index in range(count))
    except TimeoutError:
        raise _unavailable(
            endpoint,
            "it did not answer in time (a worker serves one client at a time: is another "
            "localchat using it?)",
        ) from None
    except ConnectionError as exc:
        raise _unavailable(endpoint, f"the connection failed ({exc.strerror or exc})") from None
    except OSError as exc:  # refused, no route, unknown host
        raise _unavailable(endpoint, exc.strerror or str(exc)) from None
    return WorkerInfo(endpoint, version, devices)


def remote_devices(
    endpoints: tuple[Endpoint, ...],
    *,
    link_bytes_per_s: float = DEFAULT_LINK_BYTES_PER_S,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> tuple[RemoteDevice, ...]:
    """Every device of every worker, probed, in the order llama.cpp will number them.

    A worker on this machine (loopback) is reached through the kernel, not the link.
    """
    devices = []
    for endpoint in endpoints:
        info = probe_worker(endpoint, timeout_s)
        loopback = endpoint.is_loopback
        for device in info.devices:
            devices.append(
                RemoteDevice(
                    endpoint=str(endpoint),
                    index=device.index,
                    total_bytes=device.total_bytes,
                    free_bytes=device.free_bytes,
                    link_bytes_per_s=LOOPBACK_LINK_BYTES_PER_S if loopback else link_bytes_per_s,
                    link_latency_s=LOOPBACK_LATENCY_S if loopback else NETWORK_LATENCY_S,
                    loopback=loopback,
                )
            )
    return tuple(devices)


def with_workers(hardware: Hardware, rpc: str | None, link: str | None = None) -> Hardware:
    """``hardware`` plus the devices of the workers in ``rpc`` ("host:port,..."), probed.

    Nothing is loaded anywhere: a dead or busy worker, or a llama.cpp built without
    RPC, is reported here, before llama.cpp could abort on it.
    """
    endpoints = parse_endpoints(rpc)
    if not endpoints:
        return hardware
    if hardware.build is not None and not hardware.build.supports_rpc:
        raise BackendUnavailable(
            "--rpc needs a llama-cpp-python built with RPC support", hint=RPC_REBUILD_HINT
        )
    link_bytes_per_s = parse_link(link) if link else DEFAULT_LINK_BYTES_PER_S
    remotes = remote_devices(endpoints, link_bytes_per_s=link_bytes_per_s)
    return dataclasses.replace(hardware, remotes=hardware.remotes + remotes)


def what_if_remote(
    size_bytes: int, link_bytes_per_s: float = DEFAULT_LINK_BYTES_PER_S
) -> RemoteDevice:
    """``--remote 24GiB``: a worker with one device of that size, on the network."""
    return RemoteDevice(
        endpoint="what-if",
        index=0,
        total_bytes=size_bytes,
        free_bytes=size_bytes,
        link_bytes_per_s=link_bytes_per_s,
        link_latency_s=NETWORK_LATENCY_S,
        source="what-if",
    )


def worker_refuses_connections(endpoint: Endpoint, timeout_s: float = 0.5) -> bool:
    """True when nothing accepts a TCP connection at ``endpoint`` (a dead worker)."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s):
            return False
    except OSError:
        return True


def _hello(sock: socket.socket, endpoint: Endpoint) -> tuple[int, int, int]:
    reply = _call(sock, CMD_HELLO, bytes(RPC_CONN_CAPS_BYTES), 4 + RPC_CONN_CAPS_BYTES)
    major, minor, patch = reply[0], reply[1], reply[2]
    if major != RPC_PROTO_MAJOR:
        raise _unavailable(
            endpoint,
            f"it speaks RPC protocol {major}.{minor}.{patch}, this llama.cpp speaks "
            f"{RPC_PROTO_MAJOR}.x (run the same localchat / llama-cpp-python version on both)",
        )
    return major, minor, patch


def _device_memory(sock: socket.socket, index: int) -> WorkerDeviceMemory:
    reply = _call(sock, CMD_GET_DEVICE_MEMORY, struct.pack("<I", index), 16)
    free_bytes, total_bytes = struct.unpack("<QQ", reply)
    return WorkerDeviceMemory(index, free_bytes, total_bytes)


def _call(sock: socket.socket, cmd: int, payload: bytes, reply_bytes: int) -> bytes:
    sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    size = struct.unpack("<Q", _receive(sock, 8))[0]
    if size != reply_bytes:
        raise ConnectionError(0, f"unexpected reply of {size} bytes to command {cmd}")
    return _receive(sock, reply_bytes)


def _receive(sock: socket.socket, n_bytes: int) -> bytes:
    data = bytearray()
    while len(data) < n_bytes:
        chunk = sock.recv(n_bytes - len(data))
        if not chunk:
            raise ConnectionError(0, "the worker closed the connection")
        data.extend(chunk)
    return bytes(data)


def _unavailable(endpoint: Endpoint, why: str) -> WorkerUnavailable:
    return WorkerUnavailable(
        f"RPC worker {endpoint} is not usable: {why}",
        hint="start it with `localchat worker`, or leave it out of --rpc",
    )
