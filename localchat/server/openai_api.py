"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Requests and replies are ``localchat.protocol.openai`` models.  Context size per request:
the extra body field ``num_ctx`` (the OpenAI SDK sends it with
``extra_body={"num_ctx": 8192}``); the model is loaded (or reloaded) with that context,
else the planner's context applies, as for ``ask``.  A reasoning model's thinking comes
back as ``reasoning_content`` (vLLM's and DeepSeek's field), apart from ``content``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localchat.protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkChoice,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Delta,
    ModelCard,
    ModelList,
    Timings,
    Usage,
    finish_reason,
)
from localchat.server.generation import (
    FinishingResponse,
    Generation,
    Reply,
    collect_choices,
    start_generation,
)
from localchat.server.request_log import request_record
from localchat.server.requests import read_body, resolve_model
from localchat.server.responses import json_response, sse_event
from localchat.server.state import listed_models, server_state
from localchat.types import GenerationStats, Message

Kind = Literal["chat", "text"]
SSE_PING_S = 15


async def list_models(request: Request) -> Response:
    rows = await asyncio.to_thread(listed_models, server_state(request))
    cards = [ModelCard(id=name, created=int(created)) for name, created in rows]
    return json_response(ModelList(data=cards))


async def chat_completions(request: Request) -> Response:
    body = await read_body(request, ChatCompletionRequest)
    return await _respond(request, body, "chat", messages=body.chat_messages())


async def completions(request: Request) -> Response:
    body = await read_body(request, CompletionRequest)
    return await _respond(request, body, "text", raw_prompt=body.prompt_text())


async def _respond(
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    kind: Kind,
    *,
    messages: list[Message] | None = None,
    raw_prompt: str | None = None,
) -> Response:
    generation = await start_generation(
        server_state(request),
        resolve_model(request, body.model),
        body.num_ctx,
        messages=messages,
        raw_prompt=raw_prompt,
        to_sampling=body.to_sampling,
        stop=body.stop_strings(),
        log=request_record(request),
        n_choices=body.n or 1,
    )
    reply = _Reply(kind, generation.model.name)
    if body.stream:
        events = _sse_events(generation, reply, body.include_usage())
        stream = EventSourceResponse(events, ping=SSE_PING_S, sep="\n")
        return FinishingResponse(stream, generation)  # type: ignore[return-value]
    choices = await collect_choices(generation, request)
    return json_response(reply.whole(choices, generation.total_stats()))


async def _sse_events(
    generation: Generation, reply: _Reply, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    """Each choice's chunks (``index`` tells them apart), its finish chunk as it ends;
    then, when asked, one usage chunk for the whole request."""
    try:
        if reply.kind == "chat":
            for index in range(generation.n_choices):
                yield sse_event(reply.chunk(Delta(role="assistant", content=""), index=index))
        async for index, item in generation.choice_pieces():
            if isinstance(item, GenerationStats):
                yield sse_event(reply.chunk(Delta(), finish_reason(item), index=index))
            else:
                yield sse_event(reply.piece(*item, index=index))
        if include_usage:
            yield sse_event(reply.usage_chunk(generation.total_stats()))
        yield {"data": "[DONE]"}
    finally:
        await generation.finish()


class _Reply:
    """OpenAI's reply models for one completion: one id and creation time for all."""

    def __init__(self, kind: Kind, model_name: str) -> None:
        self.kind = kind
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model_name = model_name

    def piece(
        self, kind: str, text: str, *, index: int = 0
    ) -> ChatCompletionChunk | CompletionResponse:
        if self.kind == "text":
            return self._text([CompletionChoice(index=index, text=text)])
        delta = Delta(content=text) if kind == "content" else Delta(reasoning_content=text)
        return self.chunk(delta, index=index)

    def chunk(
        self, delta: Delta, finish: str | None = None, *, index: int = 0
    ) -> ChatCompletionChunk | CompletionResponse:
        if self.kind == "text":
            text = delta.content or ""
            return self._text([CompletionChoice(index=index, text=text, finish_reason=finish)])
        choice = ChunkChoice(index=index, delta=delta, finish_reason=finish)
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model_name, choices=[choice]
        )

    def usage_chunk(self, stats: GenerationStats) -> ChatCompletionChunk | CompletionResponse:
        usage, timings = Usage.from_stats(stats), Timings.from_stats(stats)
        if self.kind == "text":
            return self._text([], usage, timings)
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model_name,
            usage=usage,
            timings=timings,
        )

    def whole(
        self, choices: list[Reply], total: GenerationStats
    ) -> ChatCompletionResponse | CompletionResponse:
        """The reply with every choice (content, reasoning, stats); ``total`` counts the
        prompt once and every choice's tokens."""
        usage, timings = Usage.from_stats(total), Timings.from_stats(total)
        if self.kind == "text":
            texts = [
                CompletionChoice(index=i, text=content, finish_reason=finish_reason(stats))
                for i, (content, _, stats) in enumerate(choices)
            ]
            return self._text(texts, usage, timings)
        messages = [
            ChatChoice(
                index=i,
                message=AssistantMessage(content=content, reasoning_content=reasoning or None),
                finish_reason=finish_reason(stats),
            )
            for i, (content, reasoning, stats) in enumerate(choices)
        ]
        return ChatCompletionResponse(
            id=self.id,
            created=self.created,
            model=self.model_name,
            choices=messages,
            usage=usage,
            timings=timings,
        )

    def _text(
        self,
        choices: list[CompletionChoice],
        usage: Usage | None = None,
        timings: Timings | None = None,
    ) -> CompletionResponse:
        return CompletionResponse(
            id=self.id,
            created=self.created,
            model=self.model_name,
            choices=choices,
            usage=usage,
            timings=timings,
        )


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
