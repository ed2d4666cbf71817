"""The backend interface: load with settings, stream pieces, read final stats, close.

Nothing here imports a backend library, so the layers above the engine can talk about
generation without loading llama.cpp.
"""

from __future__ import annotations

from typing import Protocol

from localchat.types import GenerationStats, LoadReport, PromptSpec, SamplingParams, TextStream


class LoadSettings(Protocol):
    """A backend's own settings dataclass (``engine.settings``): how it loads one model."""

    def describe(self) -> dict[str, object]:
        """What was loaded, for the user: backend, context, devices, ..."""
        ...


class Backend(Protocol):
    """One loaded model.  Backends register by settings type (``engine.registry``).

    ``settings`` is the backend's own settings, as finally loaded (after any
    out-of-memory retry); above the engine only its ``describe()`` is read.
    """

    @property
    def settings(self) -> LoadSettings: ...

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
