"""The remote engine (an OpenAI-compatible server runs the model), registered as a backend.

It has no model format: the server holds the files.  ``services`` open it with
``RemoteSettings`` from ``engine.endpoints``.
"""

from __future__ import annotations

from localchat.engine.registry import Registry
from localchat.engine.settings import RemoteSettings

BACKEND = "localchat.engine.remote_engine:RemoteBackend"


def register(registry: Registry) -> None:
    registry.add_backend(RemoteSettings, BACKEND)
