"""The server's ASGI middleware: the API key and body size limit, and the limit on
requests in progress.

Limits count requests, not sockets: an idle or half-open connection costs a file
descriptor and nothing else (``server.connections`` closes it after the request
timeout), so it can never make the server turn an authenticated client away.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localchat.errors import (
    InvalidRequest,
    LocalchatError,
    RequestTooLarge,
    ServerBusy,
    Unauthorized,
)
from localchat.server.config import ServerConfig
from localchat.server.responses import error_response

OPEN_PATHS = frozenset({"/", "/api/version"})  # answer without a key: they tell nothing


class ApiKeyAndBodyLimit:
    """The API key (Bearer, compared in constant time) and the request body size limit.

    The body is counted as it arrives, so a lying or missing Content-Length cannot
    make the server buffer more than ``max_body_bytes``.
    """

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self._key = config.api_key.encode("utf-8") if config.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._refusal(scope)
        if problem is not None:
            await error_response(scope.get("path", ""), problem)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _refusal(self, scope: Scope) -> LocalchatError | None:
        if scope.get("method") == "OPTIONS":
            return None  # CORS preflight carries no credentials
        if self._key is not None and scope.get("path") not in OPEN_PATHS:
            given = _bearer(scope)
            if given is None or not hmac.compare_digest(given, self._key):
                return Unauthorized(
                    "missing or wrong API key", hint="send Authorization: Bearer KEY"
                )
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return InvalidRequest("bad Content-Length")
            if int(length) > self.config.max_body_bytes:
                return self._too_large()
        return None

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body is over {self.config.max_body_bytes} bytes",
            hint="start the server with a larger --max-body-mb",
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.config.max_body_bytes:
                    raise self._too_large()
            return message

        return receive_limited


class InFlightLimit:
    """At most ``max_requests`` requests in progress (a stream counts until it ends);
    past that, 503 at once rather than a growing pile of waiting work."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.limit = config.max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            busy = ServerBusy(
                f"{self.in_flight} requests are in progress", hint="retry when one finishes"
            )
            await error_response(scope.get("path", ""), busy)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> bytes | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None
