"""Inference backends behind one interface (``engine.base.Backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localchat.engine.base import Backend, LoadSettings
    from localchat.engine.llama import RetryPolicy


def load_backend(settings: LoadSettings, retry: RetryPolicy | None = None) -> Backend:
    """Load a GGUF with llama-cpp-python (the only backend for GGUF files).

    ``retry(attempt)`` gives the settings to try after an out-of-memory load
    (the planner's ``Plan.retry_settings``), or None to give up.
    """
    from localchat.engine.llama import LlamaBackend

    return LlamaBackend(settings, retry)
