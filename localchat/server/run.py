"""Serve the app with uvicorn after the safety checks.

- Connections: ``server.connections`` (deadlines for unfinished requests, idle
  keep-alive connections closed); the in-flight limit counts requests, not sockets.
- SIGTERM drains: the listening socket closes (new connections are refused), requests in
  progress finish (up to ``DRAIN_TIMEOUT_S``), models unload, and the process exits 0.
- Ctrl-C stops soon: streams end at once, other requests get ``INTERRUPT_DRAIN_S``, and
  the exit status is 130, as for any command.
"""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType

import uvicorn
from sse_starlette.sse import AppStatus

from localchat.errors import ConfigError
from localchat.paths import log_dir
from localchat.server.app import build_app
from localchat.server.config import ServerConfig, check_bind_safety
from localchat.server.connections import IDLE_CONNECTION_S, deadline_protocol
from localchat.server.request_log import configure_logging
from localchat.settings import PARALLEL_AUTO

if sys.platform != "win32":  # POSIX only; Windows has no open-files limit to raise
    import resource

DRAIN_TIMEOUT_S = 30
INTERRUPT_DRAIN_S = 5
LISTEN_BACKLOG = 1024
MAX_OPEN_FILES = 65536  # the soft limit is raised towards this (never past the hard one)


def run_server(config: ServerConfig) -> None:
    check_bind_safety(config)
    configure_logging(config.quiet, log_dir() / "serve.log")
    _raise_open_files_limit()
    sock = _bind(config.host, config.port)
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"localchat: serving on http://{host}:{config.port} "
        "(OpenAI API under /v1, Ollama API under /api; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    print(f"localchat: {_slots_line(config.parallel)}", file=sys.stderr, flush=True)
    uvicorn_config = uvicorn.Config(
        build_app(config),
        http=deadline_protocol(config.request_timeout_s),
        log_level="warning",
        access_log=False,  # the request log (server.request_log) replaces it
        timeout_keep_alive=IDLE_CONNECTION_S,
        timeout_graceful_shutdown=DRAIN_TIMEOUT_S,
        backlog=LISTEN_BACKLOG,
    )
    # uvicorn handles SIGTERM (drains), then re-raises it to the handler it found: a
    # no-op here, so that a drained server exits 0 rather than dying of the signal.
    signal.signal(signal.SIGTERM, _after_drain)
    # sse-starlette would end every stream at once on any signal: _DrainingServer decides.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    _DrainingServer(uvicorn_config).run(sockets=[sock])


class _DrainingServer(uvicorn.Server):
    """SIGTERM lets streams finish; Ctrl-C ends them and drains only briefly."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            AppStatus.should_exit = True
            self.config.timeout_graceful_shutdown = INTERRUPT_DRAIN_S
        super().handle_exit(sig, frame)


def _after_drain(signum: int, frame: FrameType | None) -> None:
    """SIGTERM's handler outside uvicorn's run: nothing left to do."""


def _slots_line(parallel: int | str) -> str:
    """How many requests to one model run at once (``--parallel``)."""
    if parallel == PARALLEL_AUTO:
        return (
            "slots: --parallel auto: each model gets as many as its memory and predicted "
            "speed allow when it loads (the log says why; `localchat plan MODEL --parallel "
            "auto` shows it beforehand)"
        )
    return f"slots: {parallel} per model (--parallel): requests past that wait their turn"


def _raise_open_files_limit() -> None:
    """Each connection is a file descriptor: allow many (idle ones are cheap and time out)."""
    if sys.platform == "win32":
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="is another server running there? choose another --port",
        ) from exc
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock
