"""The ASGI app: both APIs' routes, the request log, auth, size limits, CORS and the
error map, over a pool.

Errors: every ``LocalchatError`` becomes the status ``protocol.errors`` gives it, in
OpenAI's shape under ``/v1`` and Ollama's elsewhere; anything else is a 500 with the
traceback in the server's log, and the server keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from localchat import services
from localchat.errors import LocalchatError
from localchat.protocol.errors import http_status
from localchat.server import embeddings_api, ollama_api, openai_api
from localchat.server.config import ServerConfig
from localchat.server.middleware import ApiKeyAndBodyLimit, InFlightLimit
from localchat.server.pool import ModelPool, Opener
from localchat.server.request_log import RequestLog
from localchat.server.responses import error_response, status_response
from localchat.server.state import ServerState
from localchat.services import ModelRef

log = logging.getLogger("localchat.server")


def build_app(config: ServerConfig, opener: Opener | None = None) -> Starlette:
    pool = ModelPool(config, opener or model_opener(config))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            await pool.close()

    routes = [Route("/", _root, methods=["GET", "HEAD"]), *openai_api.ROUTES, *ollama_api.ROUTES]
    routes += embeddings_api.ROUTES
    app = Starlette(
        routes=routes,
        middleware=_middleware(config),
        lifespan=lifespan,
        exception_handlers={LocalchatError: _localchat_error, HTTPException: _http_error},
    )
    app.state.localchat = ServerState(config=config, pool=pool)
    return app


def _middleware(config: ServerConfig) -> list[Middleware]:
    """Outermost first: the log sees every request, refused ones included."""
    middleware = [Middleware(RequestLog)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    middleware.append(Middleware(ApiKeyAndBodyLimit, config=config))
    middleware.append(Middleware(InFlightLimit, config=config))
    return middleware


def model_opener(config: ServerConfig) -> Opener:
    """Open a model in this process as ``ask --local`` would (the planner decides)."""

    def open_in_process(ref: ModelRef, n_ctx: int | None) -> Any:
        return services.open_model(
            ref if ref.text else None,
            local=True,
            n_ctx=n_ctx,
            n_threads=config.n_threads,
            parallel=config.parallel,
            allow_download=config.allow_download,
            notice=lambda text: log.warning("%s", text),
            rpc=config.rpc,
            link=config.link,
        )

    return open_in_process


async def _root(request: Request) -> Response:
    return PlainTextResponse("localchat is running")


async def _localchat_error(request: Request, exc: Exception) -> Response:
    if http_status(exc) >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(request.url.path, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return status_response(request.url.path, exc.status_code, exc.detail)
