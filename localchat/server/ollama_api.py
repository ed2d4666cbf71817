"""The Ollama-compatible API: enough for the ``ollama`` Python client, oterm and Open WebUI.

``/api/chat`` and ``/api/generate`` stream NDJSON (one JSON object a line, ``done``
on the last); ``options.num_ctx`` sets the context (the model reloads with it, as
in Ollama); ``keep_alive`` ("5m", seconds, 0, -1) sets how long it stays loaded.
An empty ``/api/generate`` prompt loads the model (``keep_alive: 0`` unloads it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from localchat.errors import ConfigError, InvalidRequest
from localchat.server import ollama_models
from localchat.server.config import parse_duration_s
from localchat.server.ollama_models import NDJSON, ndjson_line
from localchat.server.requests import (
    FinishingResponse,
    Generation,
    collect,
    read_body,
    resolve_model,
    start_generation,
    stop_strings,
)
from localchat.server.state import server_state
from localchat.types import GenerationStats, Message


class _Options(BaseModel):
    model_config = ConfigDict(extra="ignore")

    num_ctx: int | None = Field(None, ge=256, le=2**20)
    num_predict: int | None = None
    temperature: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    repeat_penalty: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=2**32 - 2)
    stop: str | list[str] | None = None

    def sampling(self) -> dict[str, Any]:
        max_tokens = self.num_predict
        if max_tokens is not None and max_tokens <= 0:
            max_tokens = 0  # Ollama's -1/-2: until the context is full
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
            "max_tokens": max_tokens,
        }


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = ""
    name: str = ""  # older clients
    stream: bool = True
    options: _Options = Field(default_factory=_Options)
    keep_alive: str | float | int | None = None

    def model_name(self) -> str:
        return self.model or self.name

    def keep_alive_s(self) -> float | None:
        if self.keep_alive is None:
            return None
        try:
            return parse_duration_s(self.keep_alive, 0.0)
        except ConfigError as exc:
            raise InvalidRequest(f"keep_alive: {exc.message}") from exc


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = ""


class ChatRequest(_Base):
    messages: list[_ChatMessage] = Field(default_factory=list)


class GenerateRequest(_Base):
    prompt: str = ""
    system: str | None = None
    raw: bool = False


async def chat(request: Request) -> Any:
    body = await read_body(request, ChatRequest)
    messages = [Message(m.role, m.content) for m in body.messages]
    if not messages:
        return await _load_or_unload(request, body)
    return await _respond(request, body, "message", messages=messages)


async def generate(request: Request) -> Any:
    body = await read_body(request, GenerateRequest)
    if not body.prompt:
        return await _load_or_unload(request, body)
    if body.raw:
        return await _respond(request, body, "response", raw_prompt=body.prompt)
    messages = [Message("system", body.system)] if body.system else []
    messages.append(Message("user", body.prompt))
    return await _respond(request, body, "response", messages=messages)


async def _load_or_unload(request: Request, body: _Base) -> JSONResponse:
    state = server_state(request)
    ref = resolve_model(body.model_name())
    keep_alive_s = body.keep_alive_s()
    if keep_alive_s == 0:
        await state.pool.unload(ref)
        return JSONResponse(_done(body.model_name(), "unload", None))
    entry = await state.pool.entry_for(ref, body.options.num_ctx)
    state.pool.release(entry, keep_alive_s)
    return JSONResponse(_done(entry.model.name, "load", None))


async def _respond(
    request: Request,
    body: _Base,
    field: Literal["message", "response"],
    *,
    messages: list[Message] | None = None,
    raw_prompt: str | None = None,
) -> Any:
    state = server_state(request)
    started = time.perf_counter()
    generation = await start_generation(
        state,
        resolve_model(body.model_name()),
        body.options.num_ctx,
        messages=messages,
        raw_prompt=raw_prompt,
        sampling=body.options.sampling(),
        stop=stop_strings(body.options.stop),
        keep_alive_s=body.keep_alive_s(),
    )
    name = generation.model.name
    if body.stream:
        lines = _ndjson(generation, name, field, started)
        return FinishingResponse(StreamingResponse(lines, media_type=NDJSON), generation)
    content, reasoning, stats = await collect(generation, request)
    reply = _done(name, _done_reason(stats), stats, started)
    reply.update(_payload(field, content, reasoning))
    return JSONResponse(reply)


async def _ndjson(
    generation: Generation, name: str, field: str, started: float
) -> AsyncIterator[str]:
    try:
        async for item in generation.pieces():
            if isinstance(item, GenerationStats):
                last = _done(name, _done_reason(item), item, started)
                yield ndjson_line({**last, **_payload(field, "", "")})
            else:
                kind, text = item
                content, reasoning = (text, "") if kind == "content" else ("", text)
                yield ndjson_line(
                    {
                        "model": name,
                        "created_at": _now(),
                        **_payload(field, content, reasoning),
                        "done": False,
                    }
                )
    finally:
        await generation.finish()


def _payload(field: str, content: str, reasoning: str) -> dict[str, Any]:
    if field == "message":
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["thinking"] = reasoning
        return {"message": message}
    payload: dict[str, Any] = {"response": content}
    if reasoning:
        payload["thinking"] = reasoning
    return payload


def _done(
    name: str, reason: str, stats: GenerationStats | None, started: float | None = None
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "model": name,
        "created_at": _now(),
        "done": True,
        "done_reason": reason,
    }
    if stats is not None:
        total_s = time.perf_counter() - started if started else stats.total_s
        ttft_s = stats.time_to_first_token_s or 0.0
        reply.update(
            total_duration=_ns(total_s),
            load_duration=_ns(max(0.0, total_s - stats.total_s)),
            prompt_eval_count=stats.prompt_tokens,
            prompt_eval_duration=_ns(ttft_s),
            eval_count=stats.completion_tokens,
            eval_duration=_ns(max(0.0, stats.total_s - ttft_s)),
        )
    return reply


def _done_reason(stats: GenerationStats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


ROUTES = [
    Route("/api/version", ollama_models.version, methods=["GET"]),
    Route("/api/tags", ollama_models.tags, methods=["GET"]),
    Route("/api/ps", ollama_models.ps, methods=["GET"]),
    Route("/api/show", ollama_models.show, methods=["POST"]),
    Route("/api/pull", ollama_models.pull, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
]
