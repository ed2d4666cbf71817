"""The server's state (config + model pool) and the models it can name."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from localchat.server.config import ServerConfig
from localchat.server.pool import ModelPool


@dataclass
class ServerState:
    config: ServerConfig
    pool: ModelPool
    started_at: float = field(default_factory=time.time)


def server_state(request: Request) -> ServerState:
    state = request.app.state.localchat
    assert isinstance(state, ServerState)
    return state


def served_name(installed: Any) -> str | None:
    """The name a client uses for a model on disk, or None when it has none (a bare
    path: the server never opens paths it is sent)."""
    quant = installed.quant
    if installed.source == "pip":
        return f"{installed.name}:{quant}" if quant else installed.name
    if installed.repo_id:
        return f"{installed.repo_id}:{quant}" if quant else installed.repo_id
    return None


def installed_models() -> list[tuple[str, Any]]:
    """(served name, ``store.InstalledModel``) for every model on disk a client can name."""
    from localchat.store import list_local

    named = [(served_name(m), m) for m in list_local()]
    return [(name, m) for name, m in named if name]


def listed_models(state: ServerState) -> list[tuple[str, float]]:
    """(name, unix time) for /v1/models: on disk, plus loaded ones not listed by that name."""
    rows = [(name, m.last_used or state.started_at) for name, m in installed_models()]
    seen = {name.lower() for name, _ in rows}
    for entry in state.pool.entries:
        if entry.model.name.lower() not in seen:
            rows.append((entry.model.name, entry.loaded_at))
    return rows
