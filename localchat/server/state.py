"""The server's state (config + model pool) and the models it can name."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from localchat import services
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


def listed_models(state: ServerState) -> list[tuple[str, float]]:
    """(name, unix time) for /v1/models: on disk, plus loaded ones not listed by that name."""
    rows = [(name, m.last_used or state.started_at) for name, m in services.named_models()]
    seen = {name.lower() for name, _ in rows}
    for entry in state.pool.entries:
        if entry.model.name.lower() not in seen:
            rows.append((entry.model.name, entry.loaded_at))
    return rows
