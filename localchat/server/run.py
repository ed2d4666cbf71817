"""Serve the app with uvicorn after the safety checks; Ctrl-C stops it cleanly."""

from __future__ import annotations

import logging
import socket
import sys

from localchat.errors import ConfigError
from localchat.server.config import ServerConfig, check_bind_safety


def run_server(config: ServerConfig) -> None:
    import uvicorn

    from localchat.server.app import build_app

    check_bind_safety(config)
    logging.basicConfig(
        level=logging.INFO, format="localchat serve: %(message)s", stream=sys.stderr
    )
    sock = _bind(config.host, config.port)
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"localchat: serving on http://{host}:{config.port} "
        "(OpenAI API under /v1, Ollama API under /api; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn_config = uvicorn.Config(
        build_app(config),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        limit_concurrency=256,
    )
    uvicorn.Server(uvicorn_config).run(sockets=[sock])


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
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
