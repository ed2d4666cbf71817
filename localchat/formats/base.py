"""What every chat format is: a renderer plus how generation must stop for it.

A ``ChatFormat`` turns a conversation into the exact prompt text the model was
trained on, and says which strings and token ids end the model's turn.  The
engine consumes ``ChatFormat.prompt(messages)`` (a ``PromptSpec``); nothing here
imports llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from localchat.errors import ConfigError as ConfigError  # re-exported: formats' errors
from localchat.errors import TemplateError as TemplateError
from localchat.errors import TemplateRejected as TemplateRejected
from localchat.errors import UnsafeTemplateError as UnsafeTemplateError
from localchat.types import Message, PromptSpec

FormatSource = Literal["models.toml", "gguf", "family default", "base model"]
PartKind = Literal["thinking", "reflection", "output", "text"]

# (messages, add_generation_prompt) -> prompt text
Renderer = Callable[[Sequence[Message], bool], str]


@dataclass(frozen=True)
class ReplyPart:
    """One piece of a reply: ``kind`` says which section of the reply it belongs to."""

    kind: PartKind
    text: str


class ReplyParser(Protocol):
    """Splits a reply into parts as text pieces arrive.

    ``feed`` returns the parts that became certain with this piece (consecutive
    pieces of the same kind are parts of one block; a change of kind starts a
    new block); ``finish`` flushes what was held back.
    """

    def feed(self, piece: str) -> list[ReplyPart]: ...

    def finish(self) -> list[ReplyPart]: ...


@dataclass(frozen=True)
class ChatFormat:
    """A resolved chat format for one model.

    ``source`` says where it came from: ``"models.toml"`` (explicit in the
    catalog), ``"gguf"`` (the file's own ``tokenizer.chat_template``) or
    ``"family default"`` (built in, chosen by architecture/family).
    """

    name: str
    source: FormatSource
    renderer: Renderer = field(repr=False)
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    bos_token: str = ""
    default_sampling: dict[str, float] = field(default_factory=dict)
    parser_factory: Callable[[], ReplyParser] | None = field(default=None, repr=False)
    description: str = ""
    # The reply's structure is carried by special (control) tokens, e.g. Reflection's
    # <thinking>: decode generated tokens with their special text, or the tags vanish.
    render_special_tokens: bool = False

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The exact prompt text for ``messages``."""
        return self.renderer(list(messages), add_generation_prompt)

    def prompt(self, messages: Sequence[Message]) -> PromptSpec:
        """The rendered prompt (generation prompt appended) and how to stop."""
        return self.spec(self.render(messages, add_generation_prompt=True), messages)

    def spec(
        self, text: str, messages: Sequence[Message], render_special_tokens: bool = False
    ) -> PromptSpec:
        """``text``, rendered for ``messages`` by this format, with how to stop; control
        tokens are shown if this format or ``render_special_tokens`` asks for it."""
        return PromptSpec(
            text=text,
            stop_strings=self.stop_strings,
            stop_token_ids=self.stop_token_ids,
            has_bos=bool(self.bos_token) and text.startswith(self.bos_token),
            render_special_tokens=self.render_special_tokens or render_special_tokens,
            messages=tuple(messages),
        )

    def reply_parser(self) -> ReplyParser | None:
        """A fresh streaming parser for one reply, or None for plain replies."""
        return self.parser_factory() if self.parser_factory else None


class StopChecker:
    """A llama-cpp-python stopping criterion: stop once a stop token was generated.

    llama-cpp-python calls criteria with the ids decoded *so far*; the token
    just sampled joins them one step later, so generation ends one (discarded)
    decode after the stop token.  A control token's text is empty, so none of
    it reaches the reply.  ``is_stop(token_id)`` serves loops that see tokens.
    """

    def __init__(self, stop_token_ids: Iterable[int]) -> None:
        self.stop_token_ids = frozenset(int(t) for t in stop_token_ids)

    def is_stop(self, token_id: int) -> bool:
        return int(token_id) in self.stop_token_ids

    def __call__(self, input_ids: Any, logits: Any = None) -> bool:
        return len(input_ids) > 0 and self.is_stop(input_ids[-1])


def make_stop_checker(stop_token_ids: Iterable[int]) -> StopChecker:
    """A stopping criterion for ``Llama.create_completion(stopping_criteria=[...])``."""
    return StopChecker(stop_token_ids)


def require_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise ConfigError("a conversation needs at least one message")
