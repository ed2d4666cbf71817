"""localchat: run quantized LLMs (GGUF, AWQ) on your own machine.

    import localchat

    with localchat.open_model("qwen2.5-0.5b") as model:
        for piece in model.stream_chat([localchat.Message("user", "Hello")]):
            print(piece, end="", flush=True)

    vectors = localchat.embed(["a cat", "a dog"], model="nomic-embed-text-v1.5")

The public API, re-exported as httpx's ``__init__`` does.  Only cheap modules are
imported here; ``open_model`` (and the rest of ``localchat.api``) loads on first use,
so ``localchat ask --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from localchat.errors import (
    AuthRequired,
    BackendUnavailable,
    ConfigError,
    CorruptModelFile,
    DoesNotFit,
    DownloadFailed,
    EngineError,
    ExitCode,
    HistoryError,
    Interrupted,
    InvalidRequest,
    LocalchatError,
    ModelNotFound,
    NotEnoughDisk,
    RemoteEngineError,
    RequestTooLarge,
    ServerBusy,
    TemplateError,
    TemplateRejected,
    Unauthorized,
    UnsafeTemplateError,
    WorkerUnavailable,
)
from localchat.types import GenerationStats, Message, SamplingParams

if TYPE_CHECKING:
    from localchat.api import LoadedModel, OpenOptions, embed, open_model

_LAZY = {"open_model", "LoadedModel", "OpenOptions", "embed"}  # localchat.api loads on first use

__all__ = [
    "AuthRequired",
    "BackendUnavailable",
    "ConfigError",
    "CorruptModelFile",
    "DoesNotFit",
    "DownloadFailed",
    "EngineError",
    "ExitCode",
    "GenerationStats",
    "HistoryError",
    "Interrupted",
    "InvalidRequest",
    "LoadedModel",
    "LocalchatError",
    "Message",
    "ModelNotFound",
    "NotEnoughDisk",
    "OpenOptions",
    "RemoteEngineError",
    "RequestTooLarge",
    "SamplingParams",
    "ServerBusy",
    "TemplateError",
    "TemplateRejected",
    "Unauthorized",
    "UnsafeTemplateError",
    "WorkerUnavailable",
    "__version__",
    "embed",
    "open_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # the model stack loads on first use (PEP 562), not at import
        return getattr(importlib.import_module("localchat.api"), name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # 50 ms: only when asked

        try:
            return version("localchat")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module 'localchat' has no attribute {name!r}")
