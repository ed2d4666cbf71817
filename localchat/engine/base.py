"""The backend interface: load with a plan, stream chunks, read final stats, close.

Plain dataclasses only; nothing here imports a backend library, so the CLI,
the TUI and the tests can talk about generation without loading llama.cpp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = None  # None or 0: until the context is full
    seed: int | None = None
    stop_on_repetition: bool = True  # engine.repetition: end a reply that loops


@dataclass(frozen=True)
class PromptSpec:
    """A rendered prompt and how generation must stop for its format."""

    text: str
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    has_bos: bool = False  # the text already starts with the BOS token's text
    render_special_tokens: bool = False  # show control tokens (e.g. Reflection's <thinking>)
    # The conversation ``text`` was rendered from: a remote backend sends these to the
    # server's chat endpoint (the server applies its own template); empty: raw completion.
    messages: tuple[Message, ...] = ()


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | repetition | cancelled


@dataclass
class LoadReport:
    """What the backend actually did at load (for llama.cpp: read from its log)."""

    load_s: float = 0.0
    buffers_bytes: dict[str, int] = field(default_factory=dict)
    n_gpu_layers_offloaded: int | None = None
    retries: list[str] = field(default_factory=list)
    log_text: str = ""


class Backend(Protocol):
    """One loaded model.  Implementations are listed in ``engine.BACKENDS``.

    ``settings`` is the backend's own settings dataclass (``engine.settings``), as
    finally loaded (after any out-of-memory retry); above the engine only its
    ``describe()`` and ``n_ctx`` are read.
    """

    settings: Any
    load_report: LoadReport

    @property
    def n_ctx(self) -> int: ...

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> Iterator[str]:
        """Yield text pieces as they are decoded.  Closing the iterator stops decoding."""
        ...

    @property
    def last_stats(self) -> GenerationStats: ...

    def count_tokens(self, text: str) -> int: ...

    def token_text(self, token_id: int) -> str: ...

    def close(self) -> None: ...
