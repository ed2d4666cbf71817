"""The models ``localchat serve`` holds: loaded on first request, kept for keep-alive.

- A model loads through ``services.open_model`` (the planner decides quant, layers,
  context and, with ``--parallel auto``, slots); one load at a time.
- Requests to one model run side by side, up to its ``max_streams`` (llama.cpp's slots;
  AWQ has one; a remote engine batches on its side); a request with ``n`` choices takes
  ``n``.  Past that they wait in arrival order (``admission``); more than
  ``max_queue_per_model`` waiting → ``ServerBusy`` (503).
- When a model does not fit, or ``max_loaded_models`` are loaded, the least recently
  used idle model is unloaded first (never one with a stream running or waiting); if
  only busy models hold the memory → 503.
- An idle model unloads when its keep-alive runs out (``keep_alive`` per request,
  Ollama's semantics: 0 unloads after the request, a negative value keeps it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from localchat.errors import DoesNotFit, ServerBusy
from localchat.server.admission import StreamSlots
from localchat.server.blocking_stream import ChoiceItem, stream_from_threads
from localchat.server.config import ServerConfig
from localchat.services import ModelRef
from localchat.types import GenerationStats, TextStream

log = logging.getLogger("localchat.server")

Opener = Callable[[ModelRef, int | None], Any]  # (ref, n_ctx) -> LoadedModel, blocking


@dataclass(eq=False)
class PoolEntry:
    name: str
    n_ctx_requested: int | None
    model: Any  # localchat.services.LoadedModel
    streams: StreamSlots = field(init=False)
    users: int = 0  # requests holding it: waiting or generating
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float | None = None  # monotonic; None: never
    loaded_at: float = field(default_factory=time.time)
    requests: int = 0
    cancelled: int = 0

    def __post_init__(self) -> None:
        self.streams = StreamSlots(self.model.max_streams)

    @property
    def busy(self) -> int:
        """Streams generating now."""
        return self.streams.busy

    @property
    def waiting(self) -> int:
        """Requests waiting for streams."""
        return self.streams.waiting

    def keep_for(self, keep_alive_s: float) -> None:
        now = time.monotonic()
        self.last_used = now
        self.expires_at = None if keep_alive_s < 0 else now + keep_alive_s

    def expires_at_wall(self) -> float | None:
        if self.expires_at is None:
            return None
        return time.time() + (self.expires_at - time.monotonic())


class ModelPool:
    def __init__(self, config: ServerConfig, opener: Opener) -> None:
        self.config = config
        self._opener = opener
        self._entries: list[PoolEntry] = []
        self._load_lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    @property
    def entries(self) -> list[PoolEntry]:
        return list(self._entries)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def close(self) -> None:
        """Unload everything; a model still generating (its client was just cut off) gets
        a few seconds to stop at its next token, and is never freed under its thread."""
        if self._reaper is not None:
            self._reaper.cancel()
        for _ in range(100):
            if not any(entry.busy for entry in self._entries):
                break
            await asyncio.sleep(0.1)
        for entry in list(self._entries):
            if not entry.busy:
                await self._unload(entry)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.reap()

    async def reap(self) -> None:
        """Unload idle models whose keep-alive ran out."""
        now = time.monotonic()
        for entry in list(self._entries):
            if entry.users == 0 and entry.expires_at is not None and entry.expires_at <= now:
                await self._unload(entry)

    # -- loading ---------------------------------------------------------

    async def entry_for(self, ref: ModelRef, n_ctx: int | None) -> PoolEntry:
        """The loaded entry for ``ref`` (loading it if needed), pinned: call ``release``."""
        entry = self._find(ref, n_ctx)
        if entry is None:
            async with self._load_lock:
                entry = self._find(ref, n_ctx) or await self._load(ref, n_ctx)
        entry.users += 1
        return entry

    def release(self, entry: PoolEntry, keep_alive_s: float | None) -> None:
        entry.users -= 1
        entry.keep_for(self.config.keep_alive_s if keep_alive_s is None else keep_alive_s)
        if (
            entry.users == 0
            and entry.expires_at is not None
            and entry.expires_at <= time.monotonic()
        ):
            task = asyncio.get_running_loop().create_task(self._unload(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _find(self, ref: ModelRef, n_ctx: int | None) -> PoolEntry | None:
        name = _requested_name(ref)
        for entry in self._entries:
            if _answers_to(entry, name) and (n_ctx is None or entry.n_ctx_requested == n_ctx):
                return entry
        return None

    async def _load(self, ref: ModelRef, n_ctx: int | None) -> PoolEntry:
        name = _requested_name(ref)
        for stale in [e for e in self._entries if e.name == name and e.users == 0]:
            await self._unload(stale)  # another context size: reload, as Ollama does
        while len(self._entries) >= self.config.max_loaded_models:
            await self._unload_lru_idle(f"{self.config.max_loaded_models} models are loaded")
        while True:
            try:
                model = await asyncio.to_thread(self._opener, ref, n_ctx)
                break
            except DoesNotFit as exc:
                if not self._entries:
                    raise
                await self._unload_lru_idle(f"{ref.display_name} does not fit beside them", exc)
        entry = PoolEntry(name=name, n_ctx_requested=n_ctx, model=model)
        entry.keep_for(self.config.keep_alive_s)
        self._entries.append(entry)
        log.info("loaded %s (%s): %s", model.name, model.engine_label, _slots_words(model))
        return entry

    async def _unload_lru_idle(self, reason: str, cause: Exception | None = None) -> None:
        idle = [e for e in self._entries if e.users == 0]
        if not idle:
            raise ServerBusy(
                f"{reason}, and every loaded model is in use",
                hint="retry when a request finishes",
            ) from cause
        await self._unload(min(idle, key=lambda e: e.last_used))

    async def _unload(self, entry: PoolEntry) -> None:
        if entry not in self._entries:
            return
        self._entries.remove(entry)
        log.info("unloading %s", entry.name)
        await asyncio.to_thread(entry.model.close)

    async def unload(self, ref: ModelRef) -> bool:
        name = _requested_name(ref)
        entries = [e for e in self._entries if _answers_to(e, name) and e.users == 0]
        for entry in entries:
            await self._unload(entry)
        return bool(entries)

    # -- generation ------------------------------------------------------

    async def generate(
        self,
        entry: PoolEntry,
        start: Callable[[Any], list[TextStream]],
        n_choices: int = 1,
    ) -> AsyncGenerator[ChoiceItem, None]:
        """Wait for ``n_choices`` of ``entry``'s streams (in arrival order), then read
        ``start(model)``'s streams from threads: ``(choice index, piece or Finished)``."""
        if entry.waiting >= self.config.max_queue_per_model:
            raise ServerBusy(
                f"{entry.waiting} requests are already waiting for {entry.name}",
                hint="retry later, or raise --max-queue",
            )
        await entry.streams.acquire(n_choices)
        entry.requests += 1

        def done(stats: list[GenerationStats | None]) -> None:
            entry.streams.release(n_choices)  # the threads have ended: the streams are free
            if any(s is None or s.finish_reason == "cancelled" for s in stats):
                entry.cancelled += 1
                log.info("%s: a generation stopped early (its client went away)", entry.name)

        model = entry.model
        async for item in stream_from_threads(lambda: start(model), done, n_choices):
            yield item


def _slots_words(model: Any) -> str:
    """How many replies it generates at once, and why (``--parallel auto``'s reason)."""
    count = model.max_streams
    return model.slots_reason or f"{count} slot{'s' if count != 1 else ''} of {model.n_ctx} context"


def _requested_name(ref: ModelRef) -> str:
    """The pool's key: what was asked for ("" is the default model)."""
    return ref.display_name.lower() if ref.text else ""


def _answers_to(entry: PoolEntry, name: str) -> bool:
    """The entry loaded for ``name``, or (the default model named by its own name, as a
    client does after loading "default") the model it holds is called ``name``."""
    return entry.name == name or (bool(name) and entry.model.name.lower() == name)
