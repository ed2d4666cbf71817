"""What the app needs of a loaded model, stated as Protocols (no engine imported).

``localchat.api.LoadedModel`` (what ``services.open_model`` returns) and the scripted
model of ``tui/fake.py`` both have this shape; mypy checks the real one wherever the app
is handed ``services.open_model`` as its loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from localchat.types import Message, SamplingParams, TextStream


class ReplyPart(Protocol):
    """One piece of a parsed reply: ``kind`` is "text", "output", "thinking", ..."""

    @property
    def kind(self) -> str: ...

    @property
    def text(self) -> str: ...


class ReplyParser(Protocol):
    """Splits a reply into parts as text arrives (a chat format's, e.g. Reflection's)."""

    def feed(self, piece: str) -> Sequence[ReplyPart]: ...

    def finish(self) -> Sequence[ReplyPart]: ...


class ChatModel(Protocol):
    """A model the app chats with; it stays loaded until ``close()``."""

    @property
    def name(self) -> str: ...

    @property
    def quant(self) -> str | None: ...

    @property
    def path(self) -> Path | None: ...

    @property
    def n_ctx(self) -> int: ...

    @property
    def engine_label(self) -> str:
        """Where it runs: "in-process llama.cpp", "remote engine http://...", ..."""
        ...

    @property
    def plan_summary(self) -> dict[str, Any]:
        """The plan, then what the backend really loaded (the loaded-model panel's rows)."""
        ...

    def default_sampling(self) -> SamplingParams: ...

    def stream_chat(
        self, messages: Sequence[Message], sampling: SamplingParams | None = None
    ) -> TextStream: ...

    def render_prompt(self, messages: Sequence[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def reply_parser(self) -> ReplyParser | None: ...

    def close(self) -> None: ...


# ``services.open_model``'s signature: (model name or None, *, n_ctx, allow_download,
# progress, notice, settings, ...) -> a loaded model.  Tests pass a scripted one.
Loader = Callable[..., ChatModel]
