"""Open a model that a server runs: ``--engine URL``, ``LOCALCHAT_ENGINE``, or a running
``localchat serve`` (see ``engine.endpoints``).

The server applies the model's chat template, so the prompt goes as messages; the
chat format here only renders text for token estimates and splits ``<thinking>`` (the
remote backend wraps a server's ``reasoning_content`` in it) from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from localchat.engine import load_backend
from localchat.engine.endpoints import remote_settings
from localchat.engine.settings import RemoteSettings
from localchat.errors import LocalchatError
from localchat.formats import ChatFormat, ReflectionParser
from localchat.services.model import LoadedModel, OpenOptions
from localchat.services.resolve import ModelRef, resolve_model
from localchat.types import Message


def remote_settings_for(model: str | None, opts: OpenOptions) -> RemoteSettings | None:
    """The server that should run MODEL, or None to run it in this process."""
    return remote_settings(
        model,
        engine=opts.engine,
        local=opts.local or bool(opts.rpc),  # RPC workers are this process's devices
        n_ctx=opts.n_ctx,
        api_key=opts.api_key,
        model_is_path=_is_path(model),
    )


def open_remote(settings: RemoteSettings, opts: OpenOptions) -> LoadedModel:
    backend = load_backend(settings)
    name = str(getattr(backend, "model_name", settings.model))
    return LoadedModel(_ref(name), None, None, backend, REMOTE_FORMAT, opts.settings)


def _is_path(model: str | None) -> bool:
    if not model:
        return False
    try:
        return resolve_model(model)[0].kind == "path"
    except LocalchatError:
        return False


def _ref(name: str) -> ModelRef:
    """The server's model name; a catalog entry's sampling applies when it names one."""
    try:
        ref: ModelRef | None = resolve_model(name, allow_paths=False)[0]
    except LocalchatError:
        ref = None
    if ref is not None and ref.display_name.lower() == name.lower():
        return ref
    return ModelRef(text=name, kind="hub", repo_id=name)


def _render_plain(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    text = "\n\n".join(f"{m.role}: {m.content}" for m in messages)
    return f"{text}\n\nassistant:" if add_generation_prompt else text


REMOTE_FORMAT = ChatFormat(
    name="server's template",
    source="family default",
    renderer=_render_plain,
    parser_factory=ReflectionParser,
    description="the server applies the model's chat template",
)
