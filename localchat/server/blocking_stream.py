"""The bridge from blocking token streams to the event loop: each of a request's streams
(one per choice) is read on its own thread and their pieces are read here with
``async for``, tagged with the choice's index.

Closing the async side (the client went away) sets a flag the threads check after
every piece, so every choice stops at its next token; ``on_done`` runs on the event
loop once every thread has really finished, with each choice's stats (None for a
choice that failed or never started).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from copy import copy
from dataclasses import dataclass
from typing import Any

from localchat.types import GenerationStats, TextStream


@dataclass(frozen=True)
class Finished:
    """The last item of a stream: the generation's stats."""

    stats: GenerationStats


ChoiceItem = tuple[int, "str | Finished"]  # (choice index, a piece or the end)
StartStreams = Callable[[], list[TextStream]]
OnDone = Callable[[list[GenerationStats | None]], None]


async def stream_from_threads(
    start: StartStreams, on_done: OnDone, n_choices: int = 1
) -> AsyncIterator[ChoiceItem]:
    """Yield ``(index, piece)`` of ``start()``'s streams as they come, and
    ``(index, Finished)`` as each ends; the first error any of them raises is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[int, str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed (server stopping)
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def read(index: int, stream: TextStream, stats: list[GenerationStats | None]) -> None:
        try:
            try:
                for piece in stream:
                    put((index, "piece", piece))
                    if stop.is_set():
                        break
            finally:
                stream.close()
            stats[index] = copy(stream.stats)
            put((index, "end", stats[index]))
        except BaseException as exc:  # handed to the request, which maps it to HTTP
            put((index, "error", exc))

    def produce() -> None:
        stats: list[GenerationStats | None] = [None] * n_choices
        try:
            streams = start()
        except BaseException as exc:
            put((0, "error", exc))
        else:
            others = [
                threading.Thread(
                    target=read, args=(i, s, stats), name="localchat-generate", daemon=True
                )
                for i, s in enumerate(streams[1:], start=1)
            ]
            for thread in others:
                thread.start()
            read(0, streams[0], stats)
            for thread in others:
                thread.join()
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_done, stats)

    threading.Thread(target=produce, name="localchat-generate", daemon=True).start()
    try:
        running = n_choices
        while running:
            index, kind, value = await queue.get()
            if kind == "piece":
                yield index, value
            elif kind == "error":
                raise value
            else:
                running -= 1
                yield index, Finished(value)
    finally:
        stop.set()
