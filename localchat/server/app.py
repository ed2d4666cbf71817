"""The ASGI app: both APIs' routes, auth, size limits, CORS and the error map, over a pool.

Errors: every ``LocalchatError`` becomes the status ``http_errors.HTTP_STATUS`` gives
it, in OpenAI's shape under ``/v1`` and Ollama's elsewhere; anything else is a 500
with the traceback in the server's log, and the server keeps serving.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from localchat.errors import InvalidRequest, LocalchatError, RequestTooLarge, Unauthorized
from localchat.reference import ModelRef
from localchat.server import ollama_api, openai_api
from localchat.server.config import ServerConfig
from localchat.server.http_errors import http_status, ollama_error_body, openai_error_body
from localchat.server.pool import ModelPool, Opener
from localchat.server.state import ServerState

log = logging.getLogger("localchat.server")
OPEN_PATHS = frozenset({"/", "/api/version"})  # answer without a key: they tell nothing


def build_app(config: ServerConfig, opener: Opener | None = None) -> Starlette:
    pool = ModelPool(config, opener or model_opener(config))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            await pool.close()

    middleware = [Middleware(_Guard, config=config)]
    if config.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
            ),
        )
    routes = [Route("/", _root, methods=["GET", "HEAD"]), *openai_api.ROUTES, *ollama_api.ROUTES]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={LocalchatError: _localchat_error, HTTPException: _http_error},
    )
    app.state.localchat = ServerState(config=config, pool=pool)
    return app


def model_opener(config: ServerConfig) -> Opener:
    """Open a model in this process as ``ask --local`` would (the planner decides)."""

    def open_in_process(ref: ModelRef, n_ctx: int | None) -> Any:
        from localchat.api import open_model

        return open_model(
            ref if ref.text else None,
            local=True,
            n_ctx=n_ctx,
            n_threads=config.n_threads,
            allow_download=config.allow_download,
            notice=lambda text: log.warning("%s", text),
            rpc=config.rpc,
            link=config.link,
        )

    return open_in_process


async def _root(request: Request) -> Response:
    return PlainTextResponse("localchat is running")


def error_response(path: str, exc: BaseException) -> JSONResponse:
    body = openai_error_body(exc) if path.startswith("/v1") else ollama_error_body(exc)
    return JSONResponse(body, status_code=http_status(exc))


async def _localchat_error(request: Request, exc: Exception) -> Response:
    if http_status(exc) >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(request.url.path, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"error": {"message": exc.detail, "type": "invalid_request_error", "param": None}}
    if not request.url.path.startswith("/v1"):
        body = {"error": exc.detail}
    return JSONResponse(body, status_code=exc.status_code)


class _Guard:
    """API key (Bearer, compared in constant time) and the request body size limit.

    The body is counted as it arrives, so a lying or missing Content-Length cannot
    make the server buffer more than ``max_body_bytes``.
    """

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self._key = config.api_key.encode("utf-8") if config.api_key else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        problem = self._refusal(scope)
        if problem is not None:
            await error_response(path, problem)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _refusal(self, scope: Any) -> LocalchatError | None:
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

    def _limited(self, receive: Any) -> Any:
        seen = 0

        async def receive_limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.config.max_body_bytes:
                    raise self._too_large()
            return message

        return receive_limited


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _bearer(scope: Any) -> bytes | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None
