"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Context size per request: the extra body field ``num_ctx`` (the OpenAI SDK sends it with
``extra_body={"num_ctx": 8192}``).  The model is loaded (or reloaded) with that context;
without it the planner's context applies, as for ``ask``.  A reasoning model's thinking
comes back as ``reasoning_content`` (vLLM's and DeepSeek's field), apart from ``content``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from localchat.errors import InvalidRequest
from localchat.server.requests import (
    FinishingResponse,
    Generation,
    collect,
    finish_reason,
    read_body,
    resolve_model,
    start_generation,
    stop_strings,
)
from localchat.server.state import listed_models, server_state
from localchat.types import GenerationStats, Message

MAX_SEED = 2**32 - 2


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = ""
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    stream_options: dict[str, Any] | None = None
    num_ctx: int | None = Field(None, ge=256, le=2**20)

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
        }

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class _ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def as_message(self) -> Message:
        content = self.content
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
        role = "system" if self.role == "developer" else self.role
        return Message(role, content or "")


class ChatRequest(_Sampling):
    messages: list[_ChatMessage] = Field(min_length=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise InvalidRequest("prompt: one prompt per request")
        return self.prompt[0]


async def list_models(request: Request) -> JSONResponse:
    data = [
        {"id": name, "object": "model", "created": int(created), "owned_by": "localchat"}
        for name, created in await asyncio.to_thread(listed_models, server_state(request))
    ]
    return JSONResponse({"object": "list", "data": data})


async def chat_completions(request: Request) -> Any:
    body = await read_body(request, ChatRequest)
    messages = [m.as_message() for m in body.messages]
    return await _respond(request, body, "chat", messages=messages)


async def completions(request: Request) -> Any:
    body = await read_body(request, CompletionRequest)
    return await _respond(request, body, "text", raw_prompt=body.prompt_text())


async def _respond(
    request: Request,
    body: _Sampling,
    kind: Literal["chat", "text"],
    *,
    messages: list[Message] | None = None,
    raw_prompt: str | None = None,
) -> Any:
    state = server_state(request)
    ref = resolve_model(body.model)
    generation = await start_generation(
        state,
        ref,
        body.num_ctx,
        messages=messages,
        raw_prompt=raw_prompt,
        sampling=body.sampling(),
        stop=stop_strings(body.stop),
    )
    reply = _Reply(kind, generation.model.name)
    if body.stream:
        events = _sse_events(generation, reply, body.include_usage())
        return FinishingResponse(EventSourceResponse(events, ping=15, sep="\n"), generation)
    content, reasoning, stats = await collect(generation, request)
    return JSONResponse(reply.whole(content, reasoning, stats))


async def _sse_events(
    generation: Generation, reply: _Reply, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    try:
        if reply.kind == "chat":
            yield _data(reply.chunk({"role": "assistant", "content": ""}))
        async for item in generation.pieces():
            if isinstance(item, GenerationStats):
                yield _data(reply.chunk({}, finish_reason(item)))
                if include_usage:
                    yield _data(reply.usage_chunk(item))
            else:
                yield _data(reply.piece(*item))
        yield {"data": "[DONE]"}
    finally:
        await generation.finish()


def _data(payload: dict[str, Any]) -> dict[str, str]:
    return {"data": json.dumps(payload, ensure_ascii=False)}


class _Reply:
    """OpenAI's response shapes for one completion."""

    def __init__(self, kind: Literal["chat", "text"], model_name: str) -> None:
        self.kind = kind
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model_name = model_name

    def _envelope(self, chunk: bool) -> dict[str, Any]:
        object_name = "chat.completion" if self.kind == "chat" else "text_completion"
        if chunk and self.kind == "chat":
            object_name = "chat.completion.chunk"
        return {
            "id": self.id,
            "object": object_name,
            "created": self.created,
            "model": self.model_name,
        }

    def piece(self, kind: str, text: str) -> dict[str, Any]:
        if self.kind == "text":
            return self.chunk({"text": text})
        field = "content" if kind == "content" else "reasoning_content"
        return self.chunk({field: text})

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.kind == "chat":
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {
                "index": 0,
                "text": delta.get("text", ""),
                "logprobs": None,
                "finish_reason": finish,
            }
        return {**self._envelope(chunk=True), "choices": [choice]}

    def usage_chunk(self, stats: GenerationStats) -> dict[str, Any]:
        return {**self._envelope(chunk=True), "choices": [], **_usage(stats)}

    def whole(self, content: str, reasoning: str, stats: GenerationStats) -> dict[str, Any]:
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning:
                message["reasoning_content"] = reasoning
            choice = {"index": 0, "message": message, "finish_reason": finish_reason(stats)}
        else:
            choice = {
                "index": 0,
                "text": content,
                "logprobs": None,
                "finish_reason": finish_reason(stats),
            }
        return {**self._envelope(chunk=False), "choices": [choice], **_usage(stats)}


def _usage(stats: GenerationStats) -> dict[str, Any]:
    """OpenAI's ``usage``, plus llama.cpp-style ``timings`` (the remote backend reads them)."""
    usage = {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
    timings: dict[str, Any] = {
        "prompt_n": stats.prompt_tokens,
        "predicted_n": stats.completion_tokens,
    }
    if stats.decode_tokens_per_s:
        timings["predicted_per_second"] = round(stats.decode_tokens_per_s, 3)
    if stats.time_to_first_token_s is not None:
        timings["prompt_ms"] = round(stats.time_to_first_token_s * 1000, 3)
    return {"usage": usage, "timings": timings}


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
