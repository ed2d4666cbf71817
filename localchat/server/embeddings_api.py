"""Embeddings over HTTP: OpenAI's ``/v1/embeddings``, Ollama's ``/api/embed`` and its
legacy ``/api/embeddings``.

Every vector comes back at unit length (OpenAI's and Ollama's), cut to ``dimensions``
first when asked.  OpenAI refuses an input longer than the model reads (a 400); Ollama
cuts it unless ``truncate`` is false.  The model loads through the pool as for a chat
(keep-alive, LRU unloading); a model that makes no embeddings is a 400, before it loads
when its files or its catalog entry already say so.  An empty Ollama input only loads
the model (``keep_alive: 0`` unloads it), as Ollama does.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localchat import services
from localchat.protocol.ollama import (
    EmbeddingsReply,
    EmbeddingsRequest,
    EmbedReply,
    EmbedRequest,
    parse_duration_s,
)
from localchat.protocol.openai import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from localchat.server.request_log import request_record
from localchat.server.requests import check_prompt_size, read_body, resolve_model
from localchat.server.responses import json_response
from localchat.server.state import ServerState, server_state
from localchat.services import Embeddings, EmbedOptions, ModelRef

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class _Embedded:
    result: Embeddings
    model_name: str
    load_s: float


async def openai_embeddings(request: Request) -> Response:
    body = await read_body(request, EmbeddingRequest)
    ref = resolve_model(request, body.model)
    inputs = body.inputs()
    options = EmbedOptions(dimensions=body.dimensions, truncate=False)
    done = await _embed(request, ref, inputs, options, n_ctx=None, keep_alive_s=None)
    data = [
        Embedding(embedding=_encoded(vector, body.encoding_format), index=index)
        for index, vector in enumerate(done.result.vectors)
    ]
    tokens = done.result.prompt_tokens
    usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    return json_response(EmbeddingResponse(data=data, model=done.model_name, usage=usage))


async def ollama_embed(request: Request) -> Response:
    started = time.perf_counter()
    body = await read_body(request, EmbedRequest)
    ref = resolve_model(request, body.model)
    keep_alive_s = _keep_alive_s(body.keep_alive)
    inputs = [body.input] if isinstance(body.input, str) else list(body.input)
    if body.input in ("", []):
        name = await _load_or_unload(server_state(request), ref, body.options.num_ctx, keep_alive_s)
        return json_response(EmbedReply(model=name or body.model, embeddings=[]))
    options = EmbedOptions(dimensions=body.dimensions, truncate=body.truncate)
    done = await _embed(request, ref, inputs, options, body.options.num_ctx, keep_alive_s)
    reply = EmbedReply(
        model=done.model_name,
        embeddings=done.result.vectors,
        total_duration=int((time.perf_counter() - started) * NS_PER_S),
        load_duration=int(done.load_s * NS_PER_S),
        prompt_eval_count=done.result.prompt_tokens,
    )
    return json_response(reply)


async def ollama_embeddings(request: Request) -> Response:
    """The superseded single-prompt form: ``{"embedding": [...]}``."""
    body = await read_body(request, EmbeddingsRequest)
    ref = resolve_model(request, body.model)
    keep_alive_s = _keep_alive_s(body.keep_alive)
    if not body.prompt:
        await _load_or_unload(server_state(request), ref, body.options.num_ctx, keep_alive_s)
        return json_response(EmbeddingsReply(embedding=[]))
    options = EmbedOptions(name_of=lambda _: "prompt")
    done = await _embed(request, ref, [body.prompt], options, body.options.num_ctx, keep_alive_s)
    return json_response(EmbeddingsReply(embedding=done.result.vectors[0]))


async def _embed(
    request: Request,
    ref: ModelRef,
    inputs: Sequence[str | list[int]],
    options: EmbedOptions,
    n_ctx: int | None,
    keep_alive_s: float | None,
) -> _Embedded:
    """Check the inputs' size and the model, load (or find) it, embed in a thread."""
    state = server_state(request)
    check_prompt_size(
        [item for item in inputs if isinstance(item, str)], state.config.max_prompt_chars
    )
    await asyncio.to_thread(services.check_embeds, ref)
    started = time.perf_counter()
    entry = await state.pool.entry_for(ref, n_ctx)
    load_s = time.perf_counter() - started
    try:
        result = await asyncio.to_thread(services.embed_inputs, entry.model, inputs, options)
    finally:
        state.pool.release(entry, keep_alive_s)
    record = request_record(request)
    record.model, record.prompt_tokens = entry.model.name, result.prompt_tokens
    return _Embedded(result, entry.model.name, load_s)


async def _load_or_unload(
    state: ServerState, ref: ModelRef, n_ctx: int | None, keep_alive_s: float | None
) -> str | None:
    """An empty input: load the model (or unload it with ``keep_alive: 0``); its name."""
    if keep_alive_s == 0:
        await state.pool.unload(ref)
        return None
    await asyncio.to_thread(services.check_embeds, ref)
    entry = await state.pool.entry_for(ref, n_ctx)
    state.pool.release(entry, keep_alive_s)
    return str(entry.model.name)


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """``float``: the numbers; ``base64``: their little-endian float32 bytes, as OpenAI
    sends them (its SDK asks for base64 and decodes it itself)."""
    if encoding_format != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _keep_alive_s(value: str | float | None) -> float | None:
    return None if value is None else parse_duration_s(value, 0.0)


ROUTES = [
    Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
    Route("/api/embed", ollama_embed, methods=["POST"]),
    Route("/api/embeddings", ollama_embeddings, methods=["POST"]),
]
