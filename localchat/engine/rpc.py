"""llama.cpp's RPC backend on the client side: workers become devices of this process.

The registry calls live in ``llamacpp.rpc``; this module decides when they are safe.
ggml cannot unregister a device, and inside ggml an unreachable worker aborts the
process, so every endpoint is probed (``hardware.rpc.probe_worker``) before it is
registered, and all registered ones before each load.  A worker lost mid-generation
also aborts inside ggml; the library's abort callback then reports it through
``report_abort`` (naming the lost worker) and the fatal handler (the CLI's one line
and exit code), after which the process ends — nothing can unwind through native
code.  Whatever was streamed is already in history.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from localchat.addresses import parse_endpoint
from localchat.errors import BackendUnavailable, LocalchatError, WorkerUnavailable
from localchat.hardware.rpc import probe_worker, worker_refuses_connections
from localchat.llamacpp import library
from localchat.llamacpp.library import FatalHandler


def set_fatal_handler(handler: FatalHandler) -> None:
    """Who reports an error raised inside native code, where nothing can unwind
    (the CLI's one-line message); the handler must end the process."""
    library().set_fatal_handler(handler)


def supports_rpc() -> bool:
    """Whether the installed llama.cpp was built with its RPC backend (``-DGGML_RPC=on``)."""
    return library().native.rpc.supported


def require_rpc() -> None:
    library().native.rpc.require()


def register_workers(endpoints: Sequence[str]) -> None:
    """Make each worker's devices devices of this process (once per endpoint).

    Probes every endpoint this process uses or has registered: llama.cpp connects to
    all registered workers at every load, and aborts on one that is gone.
    """
    native = library().native
    registered = native.rpc.registered
    if not endpoints and not registered:
        return
    native.rpc.require()
    for endpoint in [*registered, *(e for e in endpoints if e not in registered)]:
        probe_worker(parse_endpoint(endpoint))
    native.install_abort_handler()
    library().set_abort_reporter(report_abort)
    for endpoint in endpoints:
        native.rpc.add_server(endpoint)


def device_split(
    endpoints: Sequence[str],
    tensor_split: Sequence[float] | None,
    registered: Mapping[str, int],
) -> list[float] | None:
    """The plan's split (its workers' devices, then local GPUs) laid over llama.cpp's
    device list (every worker this process ``registered``, in order, with its device
    count, then local GPUs): workers the plan does not use get nothing."""
    if not registered:
        return list(tensor_split) if tensor_split else None
    shares = list(tensor_split) if tensor_split else [1.0]  # one offload device: all on it
    planned_remote = sum(registered.get(endpoint, 0) for endpoint in endpoints)
    remote_shares = iter(shares[:planned_remote])
    split: list[float] = []
    for endpoint, n_devices in registered.items():
        used = endpoint in endpoints
        split.extend(next(remote_shares, 0.0) if used else 0.0 for _ in range(n_devices))
    return split + shares[planned_remote:]


def registered_workers() -> Mapping[str, int]:
    """Endpoint -> its device count, for every worker this process registered."""
    lib = library()
    return lib.native.rpc.registered if lib.loaded else {}


def report_abort(text: str) -> LocalchatError:
    """ggml aborts: a lost worker when one is gone or the message is about RPC."""
    registered = list(library().native.rpc.registered)
    lost = _dead_workers(registered)
    if lost or "RPC" in text:
        which = ", ".join(lost) if lost else "one of " + ", ".join(registered)
        return WorkerUnavailable(
            f"lost RPC worker {which} while running the model",
            hint="the reply so far is kept in history; restart the worker with `localchat worker`",
        )
    return BackendUnavailable(f"llama.cpp aborted: {text}", hint="see `localchat doctor`")


def _dead_workers(endpoints: list[str], attempts: int = 3) -> list[str]:
    """The workers nothing listens for any more (asked a few times: a worker that is
    going down may still hold its port for a moment)."""
    for attempt in range(attempts):
        lost = [e for e in endpoints if worker_refuses_connections(parse_endpoint(e))]
        if lost or attempt == attempts - 1:
            return lost
        time.sleep(0.2)
    return []
