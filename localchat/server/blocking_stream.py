"""The bridge from a blocking token stream to the event loop: the engine's generator runs
on its own thread and its pieces are read here with ``async for``.

Closing the async side (the client went away) sets a flag the thread checks after
every piece, so the generation stops at the next token; ``on_done`` runs on the
event loop once the thread has really finished, with the generation's stats.
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


async def stream_from_thread(
    start: Callable[[], TextStream],
    on_done: Callable[[GenerationStats | None], None],
) -> AsyncIterator[str | Finished]:
    """Yield ``start()``'s pieces, then ``Finished``; errors are raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed (server stopping)
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:
        stats: GenerationStats | None = None
        try:
            stream = start()
            try:
                for piece in stream:
                    put(("piece", piece))
                    if stop.is_set():
                        break
            finally:
                stream.close()
            stats = copy(stream.stats)
            put(("end", stats))
        except BaseException as exc:  # handed to the request, which maps it to HTTP
            put(("error", exc))
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_done, stats)

    threading.Thread(target=produce, name="localchat-generate", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                yield value
            elif kind == "error":
                raise value
            else:
                yield Finished(value)
                return
    finally:
        stop.set()
