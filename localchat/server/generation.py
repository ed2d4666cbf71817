"""What both APIs do to answer: load (or find) the model, take its streams, run the
generation, split each reply into answer, reasoning and tool calls, and finish (release
the model, save history, note the token counts for the request log).

Everything here speaks localchat's types (``ModelRef``, ``SamplingParams``,
``Message``, ``ReplyFormat``, ``ToolUse``, ``ToolCall``); ``openai_api`` and
``ollama_api`` translate to and from the wire protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from localchat import services
from localchat.errors import LocalchatError
from localchat.server.blocking_stream import ChoiceItem, Finished
from localchat.server.pool import ModelPool, PoolEntry
from localchat.server.request_log import RequestRecord
from localchat.server.requests import check_prompt_size
from localchat.server.state import ServerState
from localchat.services import ModelRef
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
    """One request's run: the model, its output (``(choice, piece)`` then each choice's
    ``Finished``), the split of each choice into reasoning, answer and tool calls."""

    pool: ModelPool
    entry: PoolEntry
    items: AsyncGenerator[ChoiceItem, None]
    first: ChoiceItem
    parsers: list[Any]  # one per choice (None: no split)
    streams: list[TextStream]  # the engine's streams, once started (their live stats)
    keep_alive_s: float | None = None
    finished: bool = False
    history_turns: Sequence[Message] | None = None  # serve --history: saved with the reply
    log: RequestRecord | None = None  # the request log's line: the token counts
    _reply: list[str] = field(default_factory=list)  # choice 0's text (history keeps one)
    _stats: dict[int, GenerationStats] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return self.entry.model

    @property
    def n_choices(self) -> int:
        return len(self.parsers)

    async def pieces(self) -> AsyncIterator[Piece | GenerationStats]:
        """One choice's ``(kind, text)`` with kind "content" or "reasoning", and its
        ``ToolCall``s, then its stats."""
        async for _, item in self.choice_pieces():
            yield item

    async def choice_pieces(self) -> AsyncIterator[tuple[int, Piece | GenerationStats]]:
        """``(choice, piece)`` as the choices generate, and ``(choice, stats)`` as each
        ends."""
        item: ChoiceItem | None = self.first
        while item is not None:
            index, value = item
            if isinstance(value, Finished):
                self._stats[index] = value.stats
                for split in self._split_finish(index):
                    yield index, split
                yield index, value.stats
            else:
                if index == 0:
                    self._reply.append(value)
                for split in self._split(index, value):
                    yield index, split
            item = await anext(self.items, None)

    def total_stats(self) -> GenerationStats:
        """The request's token counts: the prompt once, every choice's reply."""
        stats = [self._stats.get(i) or s.stats for i, s in enumerate(self.streams)]
        if not stats:
            return self._stats.get(0) or GenerationStats(finish_reason="cancelled")
        return replace(stats[0], completion_tokens=sum(s.completion_tokens for s in stats))

    def _split(self, index: int, piece: str) -> Iterator[Piece]:
        parser = self.parsers[index]
        if parser is None:
            yield ("content", piece)
            return
        yield from _kinds(parser.feed(piece))

    def _split_finish(self, index: int) -> Iterator[Piece]:
        parser = self.parsers[index]
        if parser is not None:
            yield from _kinds(parser.finish())

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
        stats = self.total_stats()
        self.log.prompt_tokens = stats.prompt_tokens
        self.log.completion_tokens = stats.completion_tokens

    def _save_exchange(self) -> None:
        """History is a convenience: a failure to save never fails the request."""
        stats = self._stats.get(0) or GenerationStats(finish_reason="cancelled")
        try:
            with services.HistoryStore() as history:
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
    n_choices: int = 1,
    reply_format: ReplyFormat | None = None,
    tool_use: ToolUse | None = None,
    schema_field: str = "format",
) -> Generation:
    """Check the prompt's size (and a schema's or tools' keywords), load (or find) the
    model, prepare the turn (prompt, grammar), wait for its streams and read the first
    piece, so that errors (prompt too long, a schema the grammar cannot enforce, engine
    failure) become an HTTP status, not a broken stream.  ``to_sampling`` lays the
    request's sampling over the model's; ``n_choices`` replies (OpenAI's ``n``) share the
    prompt; ``schema_field`` names the schema in a 400.  The caller must ``await
    generation.finish()`` (``FinishingResponse`` does).  With ``serve --history`` the
    exchange (its first choice) is then saved."""
    texts = [m.content for m in messages] if messages is not None else [raw_prompt or ""]
    check_prompt_size(texts, state.config.max_prompt_chars)
    if reply_format is not None or tool_use is not None:  # before any model loads
        check = services.check_structured_request
        await asyncio.to_thread(check, reply_format, tool_use, schema_field)
    pool = state.pool
    entry = await pool.entry_for(ref, n_ctx)
    streams: list[TextStream] = []
    parsers: list[Any] = [None] * n_choices
    try:
        entry.model.check_choices(n_choices)
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
            parsers = [prepared.splitter() for _ in range(n_choices)]

        def start(model: Any) -> list[TextStream]:
            if messages is not None:
                started = model.stream_prepared_choices(prepared, n=n_choices)
            else:
                started = model.stream_completion_choices(
                    raw_prompt or "", params, stop, n=n_choices, reply_format=reply_format
                )
            streams.extend(started)
            return streams

        items = pool.generate(entry, start, n_choices)
        try:
            first = await anext(items)
        except BaseException:
            await items.aclose()
            raise
    except BaseException:
        pool.release(entry, keep_alive_s)
        raise
    generation = Generation(pool, entry, items, first, parsers, streams, keep_alive_s, log=log)
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
    return (await collect_choices(generation, request))[0]


async def collect_choices(generation: Generation, request: Request) -> list[WholeReply]:
    """Every choice's whole reply; stops early if the client goes away."""
    replies = [
        WholeReply("", "", [], GenerationStats(finish_reason="cancelled"))
        for _ in range(generation.n_choices)
    ]
    try:
        async for index, item in generation.choice_pieces():
            reply = replies[index]
            if isinstance(item, GenerationStats):
                reply.stats = item
            elif isinstance(item, ToolCall):
                reply.calls.append(item)
            elif item[0] == "content":
                reply.content += item[1]
            else:
                reply.reasoning += item[1]
            if await request.is_disconnected():
                break
    finally:
        await generation.finish()
    return replies


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
