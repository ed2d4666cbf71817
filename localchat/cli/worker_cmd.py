"""``localchat worker``: serve this machine's best device to other machines' llama.cpp.

Another machine then runs ``localchat ask --rpc THIS_HOST:50052 ...`` and the planner
spreads the model's layers over both.  The worker runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from localchat import services
from localchat.addresses import Endpoint, is_loopback_host
from localchat.errors import ConfigError, ExitCode
from localchat.paths import data_dir, ensure_dir, llama_log_file

if TYPE_CHECKING:
    from localchat.services import RunningWorker

NO_AUTH_WARNING = (
    "WARNING: the llama.cpp RPC protocol has no authentication: anyone who can reach "
    "{endpoint} can use this machine's {device} and send it data to run. Use it only on a "
    "trusted network or through an SSH tunnel (ssh -L 50052:127.0.0.1:50052 ...)."
)


@click.command("worker")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=50052, show_default=True, help="TCP port."
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    help="Tensor cache folder (default: <data>/rpc-cache), so weights cross the network once.",
)
@click.option(
    "--allow-network",
    is_flag=True,
    help="Allow listening on a non-loopback address (the protocol has no authentication).",
)
@click.option("--threads", "n_threads", type=click.IntRange(1, 1024), help="CPU threads.")
@click.option("--verbose", is_flag=True, help="Show llama.cpp's own server log.")
def worker(
    host: str,
    port: int,
    cache_dir: str | None,
    allow_network: bool,
    n_threads: int | None,
    verbose: bool,
) -> None:
    """Serve this machine's GPU (or CPU) to `localchat --rpc` clients until stopped."""
    endpoint = Endpoint(host, port)
    loopback = is_loopback_host(host)
    if not loopback and not allow_network:
        raise ConfigError(
            f"--host {host} would expose this machine on the network without authentication",
            hint="add --allow-network on a trusted network, or use an SSH tunnel to 127.0.0.1",
        )
    cache = Path(cache_dir) if cache_dir else data_dir() / "rpc-cache"
    threads = n_threads or _physical_cores()
    if not verbose:
        ensure_dir(llama_log_file().parent)
        services.redirect_native_stdout(llama_log_file())  # ggml's server printf()s
    running = services.start_worker(endpoint, cache, threads)
    device = running.device
    click.echo(
        f"localchat worker: serving {device.name} ({device.description}) on {endpoint}: "
        f"{device.free_bytes / 2**30:.1f} GiB free of {device.total_bytes / 2**30:.1f} GiB"
        + (f", {threads} threads" if device.kind_label == "cpu" else "")
    )
    click.echo(f"tensor cache: {running.cache_dir}")
    click.echo(f"use it with: localchat ask --rpc {endpoint} ...   (Ctrl-C stops)")
    if not loopback:
        click.echo(NO_AUTH_WARNING.format(endpoint=endpoint, device=device.name), err=True)
    _serve_until_stopped(running)


def _physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _serve_until_stopped(running: RunningWorker) -> None:
    """Wait for Ctrl-C / SIGTERM (or the server thread dying), then end the process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not running.alive():
            click.echo(f"localchat: error: the RPC server on {running.endpoint} stopped", err=True)
            _exit(ExitCode.ENGINE_FAILED)
    click.echo(f"localchat worker: stopped ({running.endpoint})")
    _exit(ExitCode.OK)


def _exit(code: int) -> None:
    """The native server loop cannot be stopped or joined: flush and leave at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
