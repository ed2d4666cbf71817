"""Inference backends behind one interface (``engine.base.Backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localchat.engine.base import Backend, LoadSettings


def load_backend(settings: LoadSettings) -> Backend:
    """Load a GGUF with llama-cpp-python (the only backend for GGUF files)."""
    from localchat.engine.llama import LlamaBackend

    return LlamaBackend(settings)
