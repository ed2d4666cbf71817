"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Requests and replies are ``localchat.protocol.openai`` models.  Context size per request:
the extra body field ``num_ctx`` (the OpenAI SDK sends it with
``extra_body={"num_ctx": 8192}``); the model is loaded (or reloaded) with that context,
else the planner's context applies, as for ``ask``.  A reasoning model's thinking comes
back as ``reasoning_content`` (vLLM's and DeepSeek's field), apart from ``content``.
``response_format`` (JSON, a JSON schema) and ``tools`` become a grammar the sampler
enforces; calls come back as ``tool_calls`` (streamed as ``delta.tool_calls``: a call's
id and name first, then its arguments) with ``finish_reason`` "tool_calls".
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
from localchat.protocol.tools import ReplyToolCall, ToolCallDelta
from localchat.server.generation import (
    FinishingResponse,
    Generation,
    WholeReply,
    collect_choices,
    start_generation,
)
from localchat.server.request_log import request_record
from localchat.server.requests import read_body, resolve_model
from localchat.server.responses import json_response, sse_event
from localchat.server.state import listed_models, server_state
from localchat.types import GenerationStats, Message, ReplyFormat, ToolCall, ToolUse

Kind = Literal["chat", "text"]
SSE_PING_S = 15


async def list_models(request: Request) -> Response:
    rows = await asyncio.to_thread(listed_models, server_state(request))
    cards = [ModelCard(id=name, created=int(created)) for name, created in rows]
    return json_response(ModelList(data=cards))


async def chat_completions(request: Request) -> Response:
    body = await read_body(request, ChatCompletionRequest)
    return await _respond(
        request,
        body,
        "chat",
        messages=body.chat_messages(),
        reply_format=body.reply_format(),
        tool_use=body.tool_use(),
    )


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
    reply_format: ReplyFormat | None = None,
    tool_use: ToolUse | None = None,
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
        reply_format=reply_format,
        tool_use=tool_use,
        schema_field="response_format.json_schema.schema",
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
        calls = [0] * generation.n_choices  # each choice's calls so far
        async for index, item in generation.choice_pieces():
            if isinstance(item, GenerationStats):
                finish = finish_reason(item, calls[index] > 0)
                yield sse_event(reply.chunk(Delta(), finish, index=index))
            elif isinstance(item, ToolCall):
                for delta in ToolCallDelta.pieces(calls[index], item):
                    yield sse_event(reply.chunk(Delta(tool_calls=[delta]), index=index))
                calls[index] += 1
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
        self, choices: list[WholeReply], total: GenerationStats
    ) -> ChatCompletionResponse | CompletionResponse:
        """The reply with every choice (content, reasoning, calls, stats); ``total``
        counts the prompt once and every choice's tokens."""
        usage, timings = Usage.from_stats(total), Timings.from_stats(total)
        if self.kind == "text":
            texts = [
                CompletionChoice(index=i, text=c.content, finish_reason=finish_reason(c.stats))
                for i, c in enumerate(choices)
            ]
            return self._text(texts, usage, timings)
        messages = [_chat_choice(i, choice) for i, choice in enumerate(choices)]
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


def _chat_choice(index: int, reply: WholeReply) -> ChatChoice:
    message = AssistantMessage(
        content=reply.content or (None if reply.calls else ""),
        reasoning_content=reply.reasoning or None,
        tool_calls=[ReplyToolCall.from_call(call) for call in reply.calls] or None,
    )
    return ChatChoice(
        index=index, message=message, finish_reason=finish_reason(reply.stats, bool(reply.calls))
    )


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
