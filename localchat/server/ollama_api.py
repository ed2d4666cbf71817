"""The Ollama-compatible API: enough for the ``ollama`` Python client, oterm and Open WebUI.

Requests and replies are ``localchat.protocol.ollama`` models.  ``/api/chat`` and
``/api/generate`` stream NDJSON (one JSON object a line, ``done`` on the last);
``options.num_ctx`` sets the context (the model reloads with it, as in Ollama);
``keep_alive`` ("5m", seconds, 0, -1) sets how long it stays loaded.  An empty
``/api/generate`` prompt (or ``/api/chat`` without messages) loads the model
(``keep_alive: 0`` unloads it).  ``think: false`` leaves a thinking model's thinking out.
``format`` ("json" or a JSON schema) and ``tools`` become a grammar the sampler enforces;
calls come back as ``message.tool_calls`` (arguments as an object), streamed as a line of
their own each.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from localchat.protocol.ollama import (
    ChatReply,
    ChatRequest,
    GenerateReply,
    GenerateRequest,
    ReplyMessage,
    done_reason,
)
from localchat.protocol.tools import OllamaReplyToolCall
from localchat.server import ollama_models
from localchat.server.generation import FinishingResponse, Generation, collect, start_generation
from localchat.server.request_log import request_record
from localchat.server.requests import read_body, resolve_model
from localchat.server.responses import NDJSON, json_response, ndjson_line
from localchat.server.state import server_state
from localchat.types import GenerationStats, Message, ToolCall

Reply = ChatReply | GenerateReply


async def chat(request: Request) -> Response | FinishingResponse:
    body = await read_body(request, ChatRequest)
    if not body.messages:
        return await _load_or_unload(request, body, ChatReply)
    return await _respond(request, body, ChatReply, body.chat_messages())


async def generate(request: Request) -> Response | FinishingResponse:
    body = await read_body(request, GenerateRequest)
    if not body.prompt:
        return await _load_or_unload(request, body, GenerateReply)
    if body.raw:
        return await _respond(request, body, GenerateReply, raw_prompt=body.prompt)
    return await _respond(request, body, GenerateReply, body.chat_messages())


async def _load_or_unload(
    request: Request, body: ChatRequest | GenerateRequest, shape: type[Reply]
) -> Response:
    state = server_state(request)
    ref = resolve_model(request, body.model_name())
    keep_alive_s = body.keep_alive_s()
    if keep_alive_s == 0:
        await state.pool.unload(ref)
        return json_response(shape(model=body.model_name()).finished("unload", None, 0.0))
    entry = await state.pool.entry_for(ref, body.options.num_ctx)
    state.pool.release(entry, keep_alive_s)
    return json_response(shape(model=entry.model.name).finished("load", None, 0.0))


async def _respond(
    request: Request,
    body: ChatRequest | GenerateRequest,
    shape: type[Reply],
    messages: list[Message] | None = None,
    *,
    raw_prompt: str | None = None,
) -> Response | FinishingResponse:
    started = time.perf_counter()
    generation = await start_generation(
        server_state(request),
        resolve_model(request, body.model_name()),
        body.options.num_ctx,
        messages=messages,
        raw_prompt=raw_prompt,
        to_sampling=body.options.to_sampling,
        stop=body.stop_strings(),
        keep_alive_s=body.keep_alive_s(),
        log=request_record(request),
        reply_format=body.reply_format(),
        tool_use=body.tool_use() if isinstance(body, ChatRequest) else None,
    )
    lines = _Lines(shape, generation.model.name, body.include_thinking())
    if body.stream:
        stream = StreamingResponse(_ndjson(generation, lines, started), media_type=NDJSON)
        return FinishingResponse(stream, generation)
    reply = await collect(generation, request)
    last = lines.line(reply.content, reply.reasoning, reply.calls).finished(
        done_reason(reply.stats), reply.stats, time.perf_counter() - started
    )
    return json_response(last)


async def _ndjson(generation: Generation, lines: _Lines, started: float) -> AsyncIterator[str]:
    try:
        async for item in generation.pieces():
            if isinstance(item, GenerationStats):
                total_s = time.perf_counter() - started
                yield ndjson_line(lines.line("", "").finished(done_reason(item), item, total_s))
                continue
            if isinstance(item, ToolCall):
                yield ndjson_line(lines.line("", "", [item]))
                continue
            kind, text = item
            content, reasoning = (text, "") if kind == "content" else ("", text)
            if content or lines.thinking:
                yield ndjson_line(lines.line(content, reasoning))
    finally:
        await generation.finish()


class _Lines:
    """One reply's NDJSON lines: a chat's ``message`` or a generate's ``response``."""

    def __init__(self, shape: type[Reply], model_name: str, thinking: bool) -> None:
        self.shape = shape
        self.model_name = model_name
        self.thinking = thinking  # the request's ``think`` is not false
        self.calls = 0  # calls sent so far: each one's index

    def line(self, content: str, reasoning: str, calls: Sequence[ToolCall] = ()) -> Reply:
        thinking = reasoning if reasoning and self.thinking else None
        if self.shape is ChatReply:
            message = ReplyMessage(
                content=content, thinking=thinking, tool_calls=self._calls(calls)
            )
            return ChatReply(model=self.model_name, message=message)
        return GenerateReply(model=self.model_name, response=content, thinking=thinking)

    def _calls(self, calls: Sequence[ToolCall]) -> list[OllamaReplyToolCall] | None:
        wire = [OllamaReplyToolCall.from_call(self.calls + i, call) for i, call in enumerate(calls)]
        self.calls += len(calls)
        return wire or None


ROUTES = [
    Route("/api/version", ollama_models.version, methods=["GET"]),
    Route("/api/tags", ollama_models.tags, methods=["GET"]),
    Route("/api/ps", ollama_models.ps, methods=["GET"]),
    Route("/api/show", ollama_models.show, methods=["POST"]),
    Route("/api/pull", ollama_models.pull, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
]
