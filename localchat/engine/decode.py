"""The per-token generation loop shared by the local backends (llama.cpp and AWQ).

A backend supplies its token ids, its end-of-generation test and its own
incremental detokenizer; this loop applies the stop strings and the completion
budget, yields the text and fills ``GenerationStats`` (time to first token,
decode speed, finish reason "stop" | "length" | "cancelled").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

from localchat.engine.stops import StopStringFilter
from localchat.types import GenerationStats


class Detokenizer(Protocol):
    """Token ids in, text out once it is whole (a backend's incremental UTF-8)."""

    def feed(self, token: int) -> str: ...

    def flush(self) -> str: ...


def decode_tokens(
    tokens: Iterator[int],
    detokenizer: Detokenizer,
    *,
    is_end: Callable[[int], bool],
    stops: StopStringFilter,
    budget: int,
    stats: GenerationStats,
    close: Callable[[], object] | None = None,
    started_at: float | None = None,
    produced_at: Callable[[], float] = time.perf_counter,
) -> Iterator[str]:
    """Yield the text of ``tokens`` until an end token, a stop string or ``budget`` tokens.

    The finish reason stays "cancelled" when the consumer closes this generator
    early (the held-back tail is then dropped).  ``close`` (the backend's token
    generator) is called first when decoding ends, however it ends.  Times are
    ``time.perf_counter()`` values: ``started_at`` when the request was made (default:
    the first read), ``produced_at()`` when the token just read was made (default: now;
    a backend that decodes in another thread knows better than the reader).
    """
    stats.finish_reason = "cancelled"
    started = time.perf_counter() if started_at is None else started_at
    first_token_at = last_token_at = started
    try:
        for token in tokens:
            last_token_at = produced_at()
            if stats.completion_tokens == 0:
                first_token_at = last_token_at
                stats.time_to_first_token_s = first_token_at - started
            if is_end(token):
                stats.finish_reason = "stop"
                break
            stats.completion_tokens += 1
            text, stopped = stops.feed(detokenizer.feed(token))
            if text:
                yield text
            if stopped:
                stats.finish_reason = "stop"
                break
            if stats.completion_tokens >= budget:
                stats.finish_reason = "length"
                break
        else:
            stats.finish_reason = "stop"
        if stats.finish_reason != "cancelled":
            tail = stops.flush(detokenizer.flush())
            if tail:
                yield tail
    finally:
        if close is not None:
            close()
        stats.total_s = max(time.perf_counter(), last_token_at) - started
        stats.decode_tokens_per_s = decode_rate(
            stats.completion_tokens, last_token_at - first_token_at
        )


def decode_rate(completion_tokens: int, decode_s: float) -> float | None:
    """Tokens a second after the first one (which pays for the prompt); None if unknown."""
    if completion_tokens > 1 and decode_s > 0:
        return (completion_tokens - 1) / decode_s
    return None
