"""How ``localchat serve`` runs: address, key, limits, keep-alive; checked before binding."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from localchat.errors import ConfigError

DEFAULT_PORT = 11435  # next to Ollama's 11434, so both can run
DEFAULT_KEEP_ALIVE_S = 300.0
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


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
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..."; None: settings.toml's
    link: str | None = None  # network speed to them, for the plan


def parse_duration_s(value: str | float | int | None, default_s: float) -> float:
    """Ollama's keep_alive forms: "5m", "30s", "1h", "500ms", a number of seconds, -1."""
    if value is None or value == "":
        return default_s
    if isinstance(value, bool):
        raise ConfigError(f"bad duration {value!r}", hint='use e.g. "5m", "30s", 0 or -1')
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if match is None:
        raise ConfigError(f"bad duration {value!r}", hint='use e.g. "5m", "30s", 0 or -1')
    return float(match.group(1)) * _UNIT_S[match.group(2)]


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
