"""One streaming HTTP GET, fast: the standard library's http.client with 1 MiB reads.

httpx2 (what huggingface_hub uses) tops out around 0.5 GB/s on loopback in 64 KiB
chunks; http.client reads 1 MiB at a time at several GB/s.  When a proxy applies
to the URL, or for anything unusual, the GET goes through huggingface_hub's httpx2
session instead, so proxy settings keep working.  Either way the caller gets a
status, headers and an iterator of ``bytes`` chunks.
"""

from __future__ import annotations

import http.client
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from localchat.errors import DownloadFailed
from localchat.hub.client import (
    TransientError,
    describe_transient,
    gated_error,
    is_transient,
    permanent_network_error,
    status_error,
)

READ_BYTES = 1024 * 1024
MAX_REDIRECTS = 5


class Headers(Protocol):
    """Response headers, looked up case-insensitively (http.client's or httpx's)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass
class BodyStream:
    status: int
    headers: Headers
    chunks: Iterator[bytes]


@contextmanager
def open_get(url: str, headers: dict[str, str], timeout_s: float) -> Iterator[BodyStream]:
    """GET ``url`` (following redirects; auth only sent to the first host)."""
    if _proxy_for(url) is not None:
        with _httpx_get(url, headers, timeout_s) as stream:
            yield stream
        return
    with _stdlib_get(url, headers, timeout_s) as stream:
        yield stream


def check_status(stream: BodyStream, *, label: str, repo_id: str) -> None:
    """Map an error status to a localchat error (TransientError for 5xx/429/408)."""
    status = stream.status
    if status in (200, 206):
        return
    if stream.headers.get("X-Error-Code") == "GatedRepo":
        raise gated_error(repo_id or label)
    if status in (408, 429) or status >= 500:
        raise TransientError(f"HTTP {status}")
    raise status_error(status, label, repo_id=repo_id or None)


def _proxy_for(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return proxy
    return None


@contextmanager
def _stdlib_get(url: str, headers: dict[str, str], timeout_s: float) -> Iterator[BodyStream]:
    first_host = urllib.parse.urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        send = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if parts.netloc == first_host:
            send = dict(headers)
        conn = _connection(parts, timeout_s)
        try:
            response = _request(conn, parts, send)
            location = response.getheader("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                continue
            yield BodyStream(response.status, response.headers, _read_chunks(response))
            return
        finally:
            conn.close()
    raise DownloadFailed(f"too many redirects for {url}")


def _request(
    conn: http.client.HTTPConnection, parts: urllib.parse.SplitResult, headers: dict[str, str]
) -> http.client.HTTPResponse:
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse()
    except (http.client.HTTPException, OSError) as exc:
        permanent = permanent_network_error(exc, f"downloading from {parts.hostname}")
        if permanent is not None:
            raise permanent from exc
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc


def _connection(parts: urllib.parse.SplitResult, timeout_s: float) -> http.client.HTTPConnection:
    host = parts.hostname or ""
    if parts.scheme == "https":
        import httpx2

        context = httpx2.create_ssl_context()
        return http.client.HTTPSConnection(
            host, parts.port or 443, timeout=timeout_s, context=context
        )
    return http.client.HTTPConnection(host, parts.port or 80, timeout=timeout_s)


def _read_chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """Whatever has arrived, up to 1 MiB at a time (so an interrupted pull loses little)."""
    while True:
        try:
            chunk = response.read1(READ_BYTES)
        except (http.client.HTTPException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if not chunk:
            return
        yield chunk


@contextmanager
def _httpx_get(url: str, headers: dict[str, str], timeout_s: float) -> Iterator[BodyStream]:
    import httpx2
    from huggingface_hub import get_session

    timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 30.0))
    try:
        with get_session().stream(
            "GET", url, headers=headers, timeout=timeout, follow_redirects=True
        ) as response:
            yield BodyStream(response.status_code, response.headers, _httpx_chunks(response))
    except httpx2.TransportError as exc:
        permanent = permanent_network_error(exc, f"downloading {url.split('?')[0][-80:]}")
        if permanent is not None:
            raise permanent from exc
        if is_transient(exc):
            raise TransientError(describe_transient(exc)) from exc
        raise


def _httpx_chunks(response: Any) -> Iterator[bytes]:  # an httpx2 streaming response
    import httpx2

    try:
        yield from response.iter_bytes()
    except httpx2.TransportError as exc:
        raise TransientError(describe_transient(exc)) from exc
