"""The backend interface: load with settings, stream pieces, read final stats, close.

Nothing here imports a backend library, so the layers above the engine can talk about
generation without loading llama.cpp.
"""

from __future__ import annotations

from typing import Any, Protocol

from localchat.types import GenerationStats, LoadReport, PromptSpec, SamplingParams, TextStream


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

    @property
    def max_streams(self) -> int:
        """How many ``stream`` calls may run at once (from different threads)."""
        ...

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        """The reply as it is decoded; ``close()`` on it stops decoding at the next token."""
        ...

    @property
    def last_stats(self) -> GenerationStats:
        """The stats of the stream started last (single-user callers)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def token_text(self, token_id: int) -> str: ...

    def close(self) -> None: ...
