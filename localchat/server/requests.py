"""What both APIs do with a request: read JSON, check it, name the model, run it.

Everything here speaks localchat's types (``ModelRef``, ``SamplingParams``,
``Message``); ``openai_api`` and ``ollama_api`` only translate field names and
response shapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from localchat.errors import InvalidRequest, RequestTooLarge
from localchat.reference import ModelRef
from localchat.server.pool import ModelPool, PoolEntry
from localchat.server.state import ServerState
from localchat.server.threads import Finished
from localchat.types import GenerationStats, Message, SamplingParams, TextStream

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_STOP_STRINGS = 8
DEFAULT_MODEL = ModelRef(text="", kind="catalog")  # the server's default model (settings.toml)
THINKING_KINDS = frozenset({"thinking", "reflection"})


async def read_body(request: Request, schema: type[ModelT]) -> ModelT:
    """The JSON body validated by ``schema``; any problem is one ``InvalidRequest`` line."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise InvalidRequest(f"{where}: {first.get('msg', 'invalid')}") from exc


def resolve_model(name: str | None) -> ModelRef:
    """A request's model name as a ``ModelRef``: catalog, cache or owner/repo, never a path.

    Ollama clients add ``:latest``; it means "the planner's choice" here.
    """
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref

    text = (name or "").strip()
    if text.lower().endswith(":latest"):
        text = text[: -len(":latest")]
    if not text:
        return DEFAULT_MODEL
    if len(text) > 200:
        raise InvalidRequest("the model name is longer than 200 characters")
    return parse_model_ref(text, load_catalog(), allow_paths=False)


def check_prompt_size(texts: Sequence[str], max_chars: int) -> None:
    total = sum(len(text) for text in texts)
    if total > max_chars:
        raise RequestTooLarge(
            f"the prompt is {total} characters; this server takes at most {max_chars}",
            hint="start the server with a larger --max-prompt-chars",
        )


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    items = [stop] if isinstance(stop, str) else list(stop or [])
    if len(items) > MAX_STOP_STRINGS or any(len(s) > 256 for s in items):
        raise InvalidRequest(f"at most {MAX_STOP_STRINGS} stop strings of 256 characters")
    return tuple(s for s in items if s)


def sampling_for(model: Any, **given: Any) -> SamplingParams:
    """The model's default sampling with the request's values over it."""
    known = {k: v for k, v in given.items() if v is not None}
    return replace(model.default_sampling(), **known)


@dataclass
class Generation:
    """One request's run: the model, its output (pieces then ``Finished``), the split."""

    pool: ModelPool
    entry: PoolEntry
    items: AsyncIterator[str | Finished]
    first: str | Finished
    parser: Any
    keep_alive_s: float | None = None
    finished: bool = False
    record: Sequence[Message] | None = None  # the request's turns, saved with the reply
    _reply: list[str] = field(default_factory=list)
    _stats: GenerationStats | None = None

    @property
    def model(self) -> Any:
        return self.entry.model

    async def pieces(self) -> AsyncIterator[tuple[str, str] | GenerationStats]:
        """``(kind, text)`` with kind "content" or "reasoning", then the stats."""
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

    def _split(self, piece: str) -> Iterator[tuple[str, str]]:
        if self.parser is None:
            yield ("content", piece)
            return
        yield from _kinds(self.parser.feed(piece))

    def _split_finish(self) -> Iterator[tuple[str, str]]:
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
            if self.record is not None:  # not awaited: a cancelled request still saves
                asyncio.get_running_loop().run_in_executor(None, self._save_exchange)

    def _save_exchange(self) -> None:
        """History is a convenience: a failure to save never fails the request."""
        from localchat.errors import LocalchatError
        from localchat.history import HistoryStore

        stats = self._stats or GenerationStats(finish_reason="cancelled")
        try:
            with HistoryStore() as history:
                history.save_exchange(
                    self.model.name, self.record or (), "".join(self._reply), stats
                )
        except (LocalchatError, OSError) as exc:
            logging.getLogger("localchat.server").warning("history not saved: %s", exc)


def _kinds(parts: Sequence[Any]) -> Iterator[tuple[str, str]]:
    for part in parts:
        if part.text:
            yield ("reasoning" if part.kind in THINKING_KINDS else "content", part.text)


async def start_generation(
    state: ServerState,
    ref: ModelRef,
    n_ctx: int | None,
    *,
    messages: Sequence[Message] | None = None,
    raw_prompt: str | None = None,
    sampling: dict[str, Any],
    stop: tuple[str, ...] = (),
    keep_alive_s: float | None = None,
) -> Generation:
    """Check the prompt's size, load (or find) the model, wait for its turn and read the
    first piece, so that errors (prompt too long, engine failure) become an HTTP status,
    not a broken stream.  The caller must ``await generation.finish()``
    (``FinishingResponse`` does).  With ``serve --history`` the exchange is then saved."""
    texts = [m.content for m in messages] if messages is not None else [raw_prompt or ""]
    check_prompt_size(texts, state.config.max_prompt_chars)
    pool = state.pool
    entry = await pool.entry_for(ref, n_ctx)
    try:
        params = sampling_for(entry.model, **sampling)

        def start(model: Any) -> TextStream:
            if messages is not None:
                return model.stream_chat(list(messages), params, stop=stop)
            return model.stream_completion(raw_prompt or "", params, stop=stop)

        items = pool.generate(entry, start)
        try:
            first = await anext(items)
        except BaseException:
            await items.aclose()
            raise
    except BaseException:
        pool.release(entry, keep_alive_s)
        raise
    parser = entry.model.reply_parser() if messages is not None else None
    generation = Generation(pool, entry, items, first, parser, keep_alive_s)
    if state.config.record_history:
        generation.record = (
            list(messages) if messages is not None else [Message("user", raw_prompt or "")]
        )
    return generation


async def collect(generation: Generation, request: Request) -> tuple[str, str, GenerationStats]:
    """The whole reply (content, reasoning, stats); stops early if the client goes away."""
    content: list[str] = []
    reasoning: list[str] = []
    stats = GenerationStats(finish_reason="cancelled")
    try:
        async for item in generation.pieces():
            if isinstance(item, GenerationStats):
                stats = item
            elif item[0] == "content":
                content.append(item[1])
            else:
                reasoning.append(item[1])
            if await request.is_disconnected():
                break
    finally:
        await generation.finish()
    return "".join(content), "".join(reasoning), stats


class FinishingResponse:
    """An ASGI response that finishes its generation however the response ends
    (a client gone before the first byte never starts the body's generator)."""

    def __init__(self, response: Any, generation: Generation) -> None:
        self.response = response
        self.generation = generation

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            await self.generation.finish()


def finish_reason(stats: GenerationStats) -> str:
    """OpenAI's vocabulary: stop or length."""
    return "length" if stats.finish_reason == "length" else "stop"
