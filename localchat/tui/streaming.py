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

from localchat.errors import LocalchatError
from localchat.tui.model import ChatModel, ReplyParser, ReplyPart
from localchat.tui.services import ReplyRecorder
from localchat.types import GenerationStats, Message, SamplingParams, TextStream

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


def split_reply(model: ChatModel | None, text: str) -> list[Part]:
    """A whole stored reply as parts, split by ``model``'s format (replies reopened from
    history; with no model loaded, all of it is text)."""
    parser = model.reply_parser() if model is not None else None
    if parser is None:
        return [Part("text", text)] if text else []
    parts = [_part(p) for p in parser.feed(text)] + [_part(p) for p in parser.finish()]
    return coalesce([p for p in parts if p.text])


def output_and_thinking(model: ChatModel | None, text: str) -> tuple[str, str]:
    """A whole stored reply as (the reply shown, the thinking folded away)."""
    parts = split_reply(model, text)
    output = "".join(p.text for p in parts if p.kind in OUTPUT_KINDS)
    thinking = "".join(p.text for p in parts if p.kind not in OUTPUT_KINDS)
    return output, thinking


def run_generation(
    model: ChatModel,
    messages: Sequence[Message],
    sampling: SamplingParams | None,
    recorder: ReplyRecorder,
    emit: Callable[[list[Part]], None],
    is_cancelled: Callable[[], bool],
) -> Outcome:
    """Stream one reply.  Never raises: errors come back in ``Outcome.error``."""
    started = time.perf_counter()
    parser: ReplyParser | None = None
    cancelled = False
    error: BaseException | None = None
    stream: TextStream | None = None
    try:
        parser = model.reply_parser()
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
        if stream is not None:
            stream.close()
    stats = _final_stats(stream, cancelled)
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
    reason = stats.get("finish_reason")
    if reason == "cancelled":
        bits.append("stopped")
    elif reason == "length":  # the reply did not end by itself: say so, and how to change it
        bits.append("⚠ cut at the max-token limit (F4: Max tokens)")
    elif reason == "repetition":
        bits.append("⚠ stopped: the reply was repeating itself")
    return " · ".join(bits)


def _parse(parser: ReplyParser | None, piece: str) -> list[Part]:
    if parser is None:
        return [Part("text", piece)]
    return [_part(p) for p in parser.feed(piece)]


def _part(raw: ReplyPart) -> Part:
    return Part(raw.kind, raw.text)


def _final_stats(stream: TextStream | None, cancelled: bool) -> GenerationStats:
    """A copy of the stream's stats, final now that it is closed (no stream: it failed
    to start, and nothing was generated)."""
    stats = stream.stats if stream is not None else GenerationStats()
    if cancelled:
        return dataclasses.replace(stats, finish_reason="cancelled")
    return dataclasses.replace(stats)


def _stats_dict(stats: GenerationStats, model: ChatModel) -> dict[str, Any]:
    return {**dataclasses.asdict(stats), "model": model.name}


def count_context(model: ChatModel, messages: Sequence[Message]) -> int:
    """Tokens the conversation takes, by the model's own tokenizer and chat format (0 when
    the format refuses to render it)."""
    try:
        return model.count_tokens(model.render_prompt(list(messages)))
    except LocalchatError:
        return 0
