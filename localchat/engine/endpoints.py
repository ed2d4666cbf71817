"""Which engine a client uses: an explicit URL, a running localchat server, or in-process.

- ``--engine URL`` / ``LOCALCHAT_ENGINE``: an OpenAI-compatible base URL (vLLM,
  llama-server, LM Studio, Ollama's ``/v1``, another localchat); the model name is the
  server's.
- Else a localchat server at ``LOCALCHAT_HOST`` (default ``127.0.0.1:11435``), when one
  answers: a loopback connect with a short timeout, then ``/api/version`` must say
  ``localchat``.  ``LOCALCHAT_HOST=off`` (or ``--local``) never looks.  No MODEL then
  means the server's default (``protocol.SERVER_DEFAULT_MODEL``, sent by name).
- Else None: the caller runs the model in its own process.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from localchat.engine.settings import RemoteSettings
from localchat.errors import ConfigError, LocalchatError

ENV_HOST = "LOCALCHAT_HOST"
ENV_ENGINE = "LOCALCHAT_ENGINE"
ENV_API_KEY = "LOCALCHAT_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
CONNECT_TIMEOUT_S = 0.05  # a loopback connect answers in microseconds
PROBE_TIMEOUT_S = 1.0
_OFF = {"", "0", "off", "none", "no"}


def server_address() -> tuple[str, int] | None:
    """The (host, port) ``LOCALCHAT_HOST`` names, the default without it, None when off."""
    raw = os.environ.get(ENV_HOST)
    if raw is None:
        return DEFAULT_HOST, DEFAULT_PORT
    if raw.strip().lower() in _OFF:
        return None
    text = raw.strip() if "://" in raw else f"http://{raw.strip()}"
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"{ENV_HOST}={raw!r} is not host:port") from exc
    return parts.hostname or DEFAULT_HOST, port


def running_server(timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """The base URL (``http://host:port``) of a localchat server that answers, else None."""
    address = server_address()
    if address is None:
        return None
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError:
        return None
    base = f"http://{_url_host(host)}:{port}"
    return base if _is_localchat(base) else None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_localchat(base: str) -> bool:
    # Imported here: only when something listens, so `ask --local` never pays for them.
    import httpx

    from localchat.protocol import parse_json, validate
    from localchat.protocol.ollama_models import VersionReply

    try:
        reply = httpx.get(f"{base}/api/version", timeout=PROBE_TIMEOUT_S)
        if reply.status_code != 200:
            return False
        return validate(VersionReply, parse_json(reply.content)).localchat is not None
    except (httpx.HTTPError, LocalchatError):
        return False


def normalize_engine_url(url: str) -> str:
    """``http://host:port`` or ``.../v1``: the OpenAI base URL, ending in ``/v1``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--engine {url!r} is not an http(s) URL", hint="e.g. http://gpu-box:8000/v1"
        )
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path if path.endswith('/v1') else path + '/v1'}"


def remote_settings(
    model: str | None,
    *,
    engine: str | None = None,
    local: bool = False,
    n_ctx: int | None = None,
    api_key: str | None = None,
    model_is_path: bool = False,
) -> RemoteSettings | None:
    """The settings of the server that should run MODEL, or None to run it in-process."""
    key = api_key or os.environ.get(ENV_API_KEY) or None
    url = engine or (None if local else os.environ.get(ENV_ENGINE) or None)
    if url:
        return RemoteSettings(normalize_engine_url(url), model or "", key, n_ctx)
    if local or model_is_path:  # a server never opens a path it was sent
        return None
    base = running_server()
    if base is None:
        return None
    return RemoteSettings(f"{base}/v1", model or "", key, n_ctx, is_localchat=True)
