"""What both APIs do to answer: load (or find) the model, take its turn, run the
generation, split the reply into answer, reasoning and tool calls, and finish (release
the model, save history, note the token counts for the request log).

Everything here speaks localchat's types (``ModelRef``, ``SamplingParams``,
``Message``, ``ReplyFormat``, ``ToolUse``, ``ToolCall``); ``openai_api`` and
``ollama_api`` translate to and from the wire protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from localchat import services
from localchat.reference import ModelRef
from localchat.server.blocking_stream import Finished
from localchat.server.pool import ModelPool, PoolEntry
from localchat.server.request_log import RequestRecord
from localchat.server.requests import check_prompt_size
from localchat.server.state import ServerState
from localchat.types import (
    GenerationStats,
    Message,
    ReplyFormat,
    SamplingParams,
    TextStream,
    ToolCall,
    ToolUse,
)

ToSampling = Callable[[SamplingParams], SamplingParams]  # the model's defaults -> the request's
Piece = tuple[str, str] | ToolCall  # ("content" | "reasoning", text), or a call


@dataclass
class Generation:
    """One request's run: the model, its output (pieces then ``Finished``), the split."""

    pool: ModelPool
    entry: PoolEntry
    items: AsyncGenerator[str | Finished, None]
    first: str | Finished
    parser: Any
    keep_alive_s: float | None = None
    finished: bool = False
    history_turns: Sequence[Message] | None = None  # serve --history: saved with the reply
    log: RequestRecord | None = None  # the request log's line: the token counts
    _reply: list[str] = field(default_factory=list)
    _stats: GenerationStats | None = None

    @property
    def model(self) -> Any:
        return self.entry.model

    async def pieces(self) -> AsyncIterator[Piece | GenerationStats]:
        """``(kind, text)`` with kind "content" or "reasoning", and ``ToolCall``s, then
        the stats."""
        item: str | Finished | None = self.first
        while item is not None:
            if isinstance(item, Finished):
                self._stats = item.stats
                for split in self._split_finish():
                    yield split
                yield item.stats
                return
            self._reply.append(item)
            for split in self._split(item):
                yield split
            item = await anext(self.items, None)

    def _split(self, piece: str) -> Iterator[Piece]:
        if self.parser is None:
            yield ("content", piece)
            return
        yield from _kinds(self.parser.feed(piece))

    def _split_finish(self) -> Iterator[Piece]:
        if self.parser is not None:
            yield from _kinds(self.parser.finish())

    async def finish(self) -> None:
        """Stop generating (if still running) and hand the model back; idempotent."""
        if self.finished:
            return
        self.finished = True
        try:
            await self.items.aclose()
        finally:
            self.pool.release(self.entry, self.keep_alive_s)
            self._note_tokens()
            if self.history_turns is not None:  # not awaited: a cancelled request still saves
                asyncio.get_running_loop().run_in_executor(None, self._save_exchange)

    def _note_tokens(self) -> None:
        if self.log is None:
            return
        stats = self._stats or self.model.last_stats
        self.log.prompt_tokens = stats.prompt_tokens
        self.log.completion_tokens = stats.completion_tokens

    def _save_exchange(self) -> None:
        """History is a convenience: a failure to save never fails the request."""
        from localchat.errors import LocalchatError
        from localchat.history import HistoryStore

        stats = self._stats or GenerationStats(finish_reason="cancelled")
        try:
            with HistoryStore() as history:
                history.save_exchange(
                    self.model.name, self.history_turns or (), "".join(self._reply), stats
                )
        except (LocalchatError, OSError) as exc:
            logging.getLogger("localchat.server").warning("history not saved: %s", exc)


def _kinds(events: Sequence[Any]) -> Iterator[Piece]:
    for event in events:
        if isinstance(event, ToolCall):
            yield event
        elif event.text:
            kind = "reasoning" if event.kind in services.THINKING_KINDS else "content"
            yield (kind, event.text)


async def start_generation(
    state: ServerState,
    ref: ModelRef,
    n_ctx: int | None,
    *,
    messages: Sequence[Message] | None = None,
    raw_prompt: str | None = None,
    to_sampling: ToSampling,
    stop: tuple[str, ...] = (),
    keep_alive_s: float | None = None,
    log: RequestRecord | None = None,
    reply_format: ReplyFormat | None = None,
    tool_use: ToolUse | None = None,
    schema_field: str = "format",
) -> Generation:
    """Check the prompt's size (and a schema's or tools' keywords), load (or find) the
    model, prepare the turn (prompt, grammar), wait for its turn and read the first piece,
    so that errors (prompt too long, a schema the grammar cannot enforce, engine failure)
    become an HTTP status, not a broken stream.  ``to_sampling`` lays the request's
    sampling over the model's; ``schema_field`` names the schema in a 400.  The caller
    must ``await generation.finish()`` (``FinishingResponse`` does).  With ``serve
    --history`` the exchange is then saved."""
    texts = [m.content for m in messages] if messages is not None else [raw_prompt or ""]
    check_prompt_size(texts, state.config.max_prompt_chars)
    if reply_format is not None or tool_use is not None:  # before any model loads
        check = services.check_structured_request
        await asyncio.to_thread(check, reply_format, tool_use, schema_field)
    pool = state.pool
    entry = await pool.entry_for(ref, n_ctx)
    parser = None
    try:
        params = to_sampling(entry.model.default_sampling())
        if messages is not None:
            prepared = await asyncio.to_thread(
                entry.model.prepare_chat,
                list(messages),
                params,
                stop,
                reply_format=reply_format,
                tool_use=tool_use,
            )
            parser = prepared.splitter()

        def start(model: Any) -> TextStream:
            stream: TextStream
            if messages is not None:
                stream = model.stream_prepared(prepared)
            else:
                text = raw_prompt or ""
                stream = model.stream_completion(text, params, stop, reply_format=reply_format)
            return stream

        items = pool.generate(entry, start)
        try:
            first = await anext(items)
        except BaseException:
            await items.aclose()
            raise
    except BaseException:
        pool.release(entry, keep_alive_s)
        raise
    generation = Generation(pool, entry, items, first, parser, keep_alive_s, log=log)
    if log is not None:
        log.model = entry.model.name
    if state.config.record_history:
        generation.history_turns = (
            list(messages) if messages is not None else [Message("user", raw_prompt or "")]
        )
    return generation


@dataclass
class WholeReply:
    content: str
    reasoning: str
    calls: list[ToolCall]
    stats: GenerationStats


async def collect(generation: Generation, request: Request) -> WholeReply:
    """The whole reply (content, reasoning, calls, stats); stops early if the client goes
    away."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    stats = GenerationStats(finish_reason="cancelled")
    try:
        async for item in generation.pieces():
            if isinstance(item, GenerationStats):
                stats = item
            elif isinstance(item, ToolCall):
                calls.append(item)
            elif item[0] == "content":
                content.append(item[1])
            else:
                reasoning.append(item[1])
            if await request.is_disconnected():
                break
    finally:
        await generation.finish()
    return WholeReply("".join(content), "".join(reasoning), calls, stats)


class FinishingResponse:
    """An ASGI response that finishes its generation however the response ends
    (a client gone before the first byte never starts the body's generator)."""

    def __init__(self, response: Response, generation: Generation) -> None:
        self.response = response
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            await self.generation.finish()
