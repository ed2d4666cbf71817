"""Reflection-Llama-3.1-70B: Llama 3 headers, the official system prompt, tagged replies.

The model answers ``<thinking>…</thinking>`` (with ``<reflection>…</reflection>``
inside it or after it) and then ``<output>…</output>``.  ``ReflectionParser``
splits a streamed reply into those parts as pieces arrive, whatever the chunk
boundaries, and copes with tags that are never closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from localchat.formats.base import ChatFormat, FormatSource, PartKind, ReplyPart
from localchat.formats.builtin import LLAMA3_BOS, LLAMA3_STOPS, make_llama3_renderer
from localchat.types import Message

REFLECTION_SYSTEM_PROMPT = (
    "You are a world-class AI system, capable of complex reasoning and reflection. "
    "Reason through the query inside <thinking> tags, and then provide your final "
    "response inside <output> tags. If you detect that you made a mistake in your "
    "reasoning at any point, correct yourself inside <reflection> tags."
)

# What `ask` shows without --show-thinking: the answer, and any untagged text
# (so a reply that ignores the tags is not swallowed).
DEFAULT_VISIBLE_KINDS: frozenset[str] = frozenset({"output", "text"})

_SECTIONS: tuple[PartKind, ...] = ("thinking", "reflection", "output")
_TAGS: dict[str, tuple[bool, PartKind]] = {
    **{f"<{name}>": (True, name) for name in _SECTIONS},
    **{f"</{name}>": (False, name) for name in _SECTIONS},
}


def with_reflection_system_prompt(messages: Sequence[Message]) -> list[Message]:
    """The official system prompt first, unless the user gave a system prompt."""
    if messages and messages[0].role == "system":
        return list(messages)
    return [Message(role="system", content=REFLECTION_SYSTEM_PROMPT), *messages]


def reflection_format(source: FormatSource, bos_token: str = "") -> ChatFormat:
    bos = bos_token or LLAMA3_BOS
    render_llama3 = make_llama3_renderer(bos)

    def render_reflection(messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return render_llama3(with_reflection_system_prompt(messages), add_generation_prompt)

    return ChatFormat(
        name="reflection",
        source=source,
        renderer=render_reflection,
        stop_strings=tuple(LLAMA3_STOPS),
        stop_token_ids=tuple(LLAMA3_STOPS.values()),
        bos_token=bos,
        default_sampling={"temperature": 0.7, "top_p": 0.95},
        parser_factory=ReflectionParser,
        render_special_tokens=True,
        description="Llama 3 headers + Reflection's system prompt; <thinking>/<output> replies",
    )


class ReflectionParser:
    """Streaming splitter for ``<thinking>``/``<reflection>``/``<output>`` replies.

    Text outside every tag is kind ``"text"``.  Whitespace at the start and end
    of each section is dropped (the tags sit on lines of their own).  An
    ``<output>`` closes whatever thinking is still open; stray closing tags
    are dropped; text held back as a possible tag prefix is flushed by
    ``finish()``.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._open: list[PartKind] = []
        self._started = False  # the current section has shown non-space text
        self._pending_space = ""  # trailing whitespace, shown only if text follows

    @property
    def kind(self) -> PartKind:
        return self._open[-1] if self._open else "text"

    def feed(self, piece: str) -> list[ReplyPart]:
        self._buffer += piece
        out: list[ReplyPart] = []
        while self._buffer:
            start = self._buffer.find("<")
            if start == -1:
                self._emit(self._buffer, out)
                self._buffer = ""
                break
            if start:
                self._emit(self._buffer[:start], out)
                self._buffer = self._buffer[start:]
            tag = _tag_at_start(self._buffer)
            if tag == "partial":
                break
            if tag is None:
                self._emit("<", out)
                self._buffer = self._buffer[1:]
                continue
            self._apply(tag)
            self._buffer = self._buffer[len(tag) :]
        return out

    def finish(self) -> list[ReplyPart]:
        out: list[ReplyPart] = []
        self._emit(self._buffer, out)
        self._buffer = ""
        self._pending_space = ""
        return out

    def _apply(self, tag: str) -> None:
        opening, name = _TAGS[tag]
        before = list(self._open)
        if opening and name not in self._open:
            if name == "output":
                self._open.clear()
            self._open.append(name)
        elif not opening and name in self._open:
            del self._open[self._open.index(name) :]
        if self._open != before:
            self._started = False
            self._pending_space = ""

    def _emit(self, text: str, out: list[ReplyPart]) -> None:
        if not self._started:
            text = text.lstrip()
            if not text:
                return
            self._started = True
        body = text.rstrip()
        if not body:
            self._pending_space += text
            return
        _append(out, self.kind, self._pending_space + body)
        self._pending_space = text[len(body) :]


def _tag_at_start(buffer: str) -> str | None:
    """The tag ``buffer`` starts with, ``"partial"`` if it may still become one, else None."""
    for tag in _TAGS:
        if buffer.startswith(tag):
            return tag
    if any(tag.startswith(buffer) for tag in _TAGS):
        return "partial"
    return None


def _append(out: list[ReplyPart], kind: PartKind, text: str) -> None:
    if out and out[-1].kind == kind:
        out[-1] = ReplyPart(kind, out[-1].text + text)
    else:
        out.append(ReplyPart(kind, text))


def merge_parts(parts: Iterable[ReplyPart]) -> list[ReplyPart]:
    """Consecutive parts of the same kind joined into one."""
    merged: list[ReplyPart] = []
    for part in parts:
        _append(merged, part.kind, part.text)
    return merged


def split_reply(text: str) -> list[ReplyPart]:
    """A whole reply as its parts, in order (for ``--json`` and history)."""
    parser = ReflectionParser()
    return merge_parts([*parser.feed(text), *parser.finish()])


def visible_text(parts: Iterable[ReplyPart], show_thinking: bool = False) -> str:
    """What ``ask`` prints: the output (and untagged text), or everything."""
    if show_thinking:
        return "\n\n".join(part.text for part in merge_parts(parts))
    return "".join(part.text for part in parts if part.kind in DEFAULT_VISIBLE_KINDS)
