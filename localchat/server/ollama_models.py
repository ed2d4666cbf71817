"""Ollama's model endpoints: ``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``
and ``/api/pull`` (NDJSON progress lines, then ``{"status": "success"}``)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from importlib.metadata import version as package_version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from localchat import services
from localchat.errors import InvalidRequest, LocalchatError, ModelNotFound
from localchat.protocol.errors import error_message
from localchat.protocol.ollama import iso_time
from localchat.protocol.ollama_models import (
    ListedModel,
    ModelDetails,
    ModelRequest,
    PoolStatus,
    PsReply,
    PullProgress,
    RunningModel,
    ShowReply,
    TagsReply,
    VersionReply,
)
from localchat.server.requests import read_body, resolve_model
from localchat.server.responses import NDJSON, json_response, ndjson_line
from localchat.server.state import server_state
from localchat.services import ModelRef, ProgressCallback

_PULLS: set[asyncio.Task[None]] = set()
FOREVER = "9999-12-31T23:59:59Z"  # /api/ps's expires_at for a model kept loaded forever


# -- models ------------------------------------------------------------------


async def version(request: Request) -> Response:
    localchat_version = package_version("localchat")
    return json_response(VersionReply(version=localchat_version, localchat=localchat_version))


async def tags(request: Request) -> Response:
    rows = await asyncio.to_thread(services.named_models)
    started_at = server_state(request).started_at
    models = [
        ListedModel(
            name=name,
            model=name,
            modified_at=iso_time(m.last_used or started_at),
            size=m.size_bytes,
            digest=_digest(name),
            details=_details(m.quant, m.format),
        )
        for name, m in rows
    ]
    return json_response(TagsReply(models=models))


async def ps(request: Request) -> Response:
    models = []
    for entry in server_state(request).pool.entries:
        model = entry.model
        expires = entry.expires_at_wall()
        status = PoolStatus(
            engine=model.engine_label,
            slots=entry.streams.capacity,
            busy=entry.busy,
            waiting=entry.waiting,
            requests=entry.requests,
            cancelled=entry.cancelled,
        )
        models.append(
            RunningModel(
                name=model.name,
                model=model.name,
                size=_size_bytes(model),
                digest=_digest(model.name),
                details=_details(model.quant, model.model_format),
                expires_at=iso_time(expires) if expires is not None else FOREVER,
                context_length=model.n_ctx,
                localchat=status,
            )
        )
    return json_response(PsReply(models=models))


async def show(request: Request) -> Response:
    body = await read_body(request, ModelRequest)
    ref = resolve_model(request, body.model_name())
    info = await asyncio.to_thread(_model_info, ref)
    return json_response(info)


def _model_info(ref: ModelRef) -> ShowReply:
    info = services.show_model(ref if ref.text else None)
    if info.local is None:
        raise ModelNotFound(f"{info.label} is not on disk", hint="pull it first (/api/pull)")
    metadata = dict(info.metadata)
    shown = {k: v for k, v in metadata.items() if _shown(k, v)}
    return ShowReply(
        template=info.chat_format.description,
        details=_details(info.local.quant, info.local.format, metadata),
        model_info=shown,
        capabilities=list(info.capabilities),
        modified_at=iso_time(max(f.stat().st_mtime for f in info.local.files)),
    )


def _shown(key: str, value: object) -> bool:
    return isinstance(value, str | int | float) and "token" not in key


def _details(quant: str | None, fmt: str, metadata: dict[str, Any] | None = None) -> ModelDetails:
    metadata = metadata or {}
    family = str(metadata.get("general.architecture", ""))
    return ModelDetails(
        format=fmt,
        family=family,
        families=[family] if family else [],
        parameter_size=str(metadata.get("general.size_label", "")),
        quantization_level=quant or "",
    )


def _digest(name: str) -> str:
    """A stable id for the name (Ollama's is a manifest hash; clients only show it)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def _size_bytes(model: Any) -> int:
    local = getattr(model, "local", None)
    return int(local.size_bytes) if local is not None else 0


# -- pull --------------------------------------------------------------------


async def pull(request: Request) -> Response:
    body = await read_body(request, ModelRequest)
    state = server_state(request)
    ref = resolve_model(request, body.model_name())
    if not state.config.allow_download:
        raise InvalidRequest("this server does not download models (--no-pull)")
    if not body.stream:
        await asyncio.to_thread(_pull_blocking, ref, None)
        return json_response(PullProgress(status="success"))
    return StreamingResponse(_pull_lines(ref), media_type=NDJSON)


def _pull_blocking(ref: ModelRef, progress: ProgressCallback | None) -> None:
    services.pull_model(ref, progress=progress)


class _PullStopped(Exception):
    """Raised from the progress callback when the client went away."""


async def _pull_lines(ref: Any) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[PullProgress | None] = asyncio.Queue()
    stopped = False

    def progress(event: Any) -> None:
        if stopped:
            raise _PullStopped
        status = (
            f"pulling {event.file}" if event.stage == "download" else f"{event.stage} {event.file}"
        )
        line = PullProgress(
            status=status.strip(),
            digest=event.file,
            total=event.bytes_total,
            completed=event.bytes_done,
        )
        loop.call_soon_threadsafe(events.put_nowait, line)

    async def run() -> None:
        try:
            await asyncio.to_thread(_pull_blocking, ref, progress)
            events.put_nowait(PullProgress(status="success"))
        except (LocalchatError, _PullStopped) as exc:
            events.put_nowait(PullProgress(error=error_message(exc)))
        finally:
            events.put_nowait(None)

    yield ndjson_line(PullProgress(status="pulling manifest"))
    task = asyncio.create_task(run())
    _PULLS.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_PULLS.discard)
    try:
        while (line := await events.get()) is not None:
            yield ndjson_line(line)
    finally:
        stopped = True  # the pull stops at its next progress event
