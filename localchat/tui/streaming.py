"""Driving one reply from the engine, with no Textual in sight.

``run_generation`` runs in a worker thread: it feeds each piece to the history recorder
(so whatever is shown is already on disk), splits Reflection replies into parts, and hands
the parts to ``emit``.  ``PartBuffer`` lets the thread hand parts to the UI without
blocking: the UI drains everything that piled up since its last paint in one go.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from localchat.engine.base import GenerationStats, Message, SamplingParams
from localchat.history import ReplyRecorder

OUTPUT_KINDS = ("output", "text")  # shown as the reply; anything else is folded away


@dataclass(frozen=True)
class Part:
    kind: str  # "text", "output", "thinking", "reflection"
    text: str


@dataclass
class Outcome:
    text: str
    stats: GenerationStats | None
    cancelled: bool
    message_id: int | None = None
    error: BaseException | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class PartBuffer:
    """Thread-safe list of parts; ``push`` says when the UI should be woken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[Part] = []

    def push(self, parts: Iterable[Part]) -> bool:
        """Add parts; True when the buffer was empty (schedule one drain)."""
        with self._lock:
            was_empty = not self._parts
            self._parts.extend(p for p in parts if p.text)
            return was_empty and bool(self._parts)

    def drain(self) -> list[Part]:
        """Everything pushed so far, adjacent parts of one kind joined."""
        with self._lock:
            parts, self._parts = self._parts, []
        return coalesce(parts)


def coalesce(parts: Sequence[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if merged and merged[-1].kind == part.kind:
            merged[-1] = Part(part.kind, merged[-1].text + part.text)
        else:
            merged.append(part)
    return merged


def split_reply(parser_factory: Callable[[], Any] | None, text: str) -> list[Part]:
    """A whole stored reply as parts (for replies reopened from history)."""
    parser = parser_factory() if parser_factory else None
    if parser is None:
        return [Part("text", text)] if text else []
    parts = [_part(p) for p in parser.feed(text)] + [_part(p) for p in parser.finish()]
    return coalesce([p for p in parts if p.text])


def run_generation(
    model: Any,
    messages: Sequence[Message],
    sampling: SamplingParams | None,
    recorder: ReplyRecorder,
    emit: Callable[[list[Part]], None],
    is_cancelled: Callable[[], bool],
) -> Outcome:
    """Stream one reply.  Never raises: errors come back in ``Outcome.error``."""
    started = time.perf_counter()
    parser = _make_parser(model)
    cancelled = False
    error: BaseException | None = None
    stream = None
    try:
        stream = model.stream_chat(list(messages), sampling)
        for piece in stream:
            if is_cancelled():
                cancelled = True
                break
            recorder.feed(piece)
            emit(_parse(parser, piece))
        else:
            cancelled = is_cancelled()
        if parser is not None:
            emit([_part(p) for p in parser.finish()])
    except Exception as exc:  # the UI turns it into a notification
        error = exc
    finally:
        if stream is not None and hasattr(stream, "close"):
            stream.close()
    stats = _final_stats(model, cancelled)
    message_id = None
    try:
        message_id = recorder.finish(_stats_dict(stats, model))
    except Exception as exc:  # e.g. the disk is full; what streamed was committed already
        error = error or exc
    return Outcome(
        text=recorder.text,
        stats=stats,
        cancelled=cancelled,
        message_id=message_id,
        error=error,
        wall_s=time.perf_counter() - started,
    )


def format_stats(stats: dict[str, Any] | GenerationStats | None) -> str:
    """``TTFT 0.21 s · 41.3 tok/s · 128 tokens`` (what is known of it)."""
    if stats is None:
        return ""
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        stats = dataclasses.asdict(stats)
    assert isinstance(stats, dict)
    bits = []
    if stats.get("time_to_first_token_s") is not None:
        bits.append(f"TTFT {stats['time_to_first_token_s']:.2f} s")
    if stats.get("decode_tokens_per_s"):
        bits.append(f"{stats['decode_tokens_per_s']:.1f} tok/s")
    if stats.get("completion_tokens"):
        bits.append(f"{stats['completion_tokens']} tokens")
    if stats.get("finish_reason") == "cancelled":
        bits.append("stopped")
    elif stats.get("finish_reason") == "length":
        bits.append("hit max tokens")
    return " · ".join(bits)


def _make_parser(model: Any) -> Any:
    factory = getattr(model, "reply_parser", None)
    try:
        return factory() if factory else None
    except Exception:  # a format without a parser must not stop the chat
        return None


def _parse(parser: Any, piece: str) -> list[Part]:
    if parser is None:
        return [Part("text", piece)]
    return [_part(p) for p in parser.feed(piece)]


def _part(raw: Any) -> Part:
    return Part(str(getattr(raw, "kind", "text")), str(getattr(raw, "text", "")))


def _final_stats(model: Any, cancelled: bool) -> GenerationStats | None:
    try:
        stats = model.last_stats
    except Exception:
        return None
    if stats is not None and cancelled:
        stats = dataclasses.replace(stats, finish_reason="cancelled")
    return stats


def _stats_dict(stats: GenerationStats | None, model: Any) -> dict[str, Any] | None:
    if stats is None:
        return None
    data = dataclasses.asdict(stats)
    data["model"] = getattr(model, "name", None)
    return data


def count_context(model: Any, messages: Sequence[Message]) -> int:
    """Tokens the conversation takes, by the model's own tokenizer (0 when unknown)."""
    try:
        render = getattr(model, "render_prompt", None)
        if callable(render):
            return int(model.count_tokens(render(list(messages))))
        return sum(int(model.count_tokens(m.content)) for m in messages)
    except Exception:
        return 0
