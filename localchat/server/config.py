"""How ``localchat serve`` runs: address, key, limits, keep-alive; checked before binding."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from localchat.errors import ConfigError

DEFAULT_PORT = 11435  # next to Ollama's 11434, so both can run
DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S  # < 0: forever; 0: unload after each request
    max_queue_per_model: int = 32  # requests waiting for one model; more get 503
    max_loaded_models: int = 3
    max_body_bytes: int = 8 * 2**20
    max_prompt_chars: int = 1_000_000
    allow_download: bool = True  # load-on-first-request may pull a catalog/hub model
    record_history: bool = False  # save each exchange in the history store (serve --history)
    insecure_no_api_key: bool = False  # the loudly named opt-out for a public bind
    n_threads: int | None = None  # llama.cpp threads (None: the planner's choice)
    parallel: int | str = "auto"  # slots per model (replies generated at once), or "auto"
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..."; None: settings.toml's
    link: str | None = None  # network speed to them, for the plan
    # A request's headers, and then its body, must arrive within this long (else the
    # connection closes); idle keep-alive connections close after IDLE_CONNECTION_S.
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_requests: int = 256  # requests in progress (not sockets); more get 503 at once
    quiet: bool = False  # no request log lines on stderr (the log file keeps them)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_safety(config: ServerConfig) -> None:
    """Refuse to serve a non-loopback address without an API key (unless opted out)."""
    if is_loopback(config.host) or config.api_key or config.insecure_no_api_key:
        return
    raise ConfigError(
        f"refusing to serve on {config.host} without an API key: anyone who can reach it "
        "could run models and download files on this machine",
        hint="add --api-key KEY (clients send it as a Bearer token), or bind 127.0.0.1; "
        "--insecure-no-api-key serves it open",
    )
