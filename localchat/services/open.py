"""Open a model: find (or pull) it, check it, plan it, load it, pick its chat format.

The user's settings (settings.toml, or ``settings=``) apply here, once: the default
model, context size, threads, RPC workers, sampling and system prompt, for ``ask``, the
app, the server and library users alike.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

from localchat.catalog import load_catalog
from localchat.engine import cancel_loads as cancel_engine_loads
from localchat.engine import open_backend
from localchat.engine.registry import format_named
from localchat.errors import AuthRequired, DownloadFailed, ModelNotFound
from localchat.hardware import Hardware, detect_hardware
from localchat.hardware.rpc import with_workers
from localchat.planner import PlanRequest, plan_reference
from localchat.planner.awq_ref import preferred_awq_plan
from localchat.planner.reasons import beyond_training_line
from localchat.services.model import LoadedModel, OpenOptions
from localchat.services.pull import ensure_local
from localchat.services.remote import open_remote, remote_settings_for
from localchat.services.resolve import (
    ModelRef,
    blame_settings,
    find_on_disk,
    resolve_model,
    with_quant,
)
from localchat.services.show import describe
from localchat.settings import PARALLEL_AUTO, load_settings
from localchat.store import LocalModel, mark_used


def open_model(model: str | ModelRef | None = None, **options: Any) -> LoadedModel:
    """Find (or pull), plan and load MODEL.  Keyword options: see ``OpenOptions``.

    With ``engine=URL`` (or ``LOCALCHAT_ENGINE``), or when a localchat server is running
    and ``local`` is false, the model runs there (``engine.endpoints``); MODEL is then
    the server's name for it.
    """
    opts = _with_user_settings(OpenOptions(**options))
    if not isinstance(model, ModelRef) and not opts.rpc:  # RPC workers serve this process
        remote = remote_settings_for(model, opts)
        if remote is not None:
            return open_remote(remote, opts)
    ref, was_default = resolve_model(model, opts.settings)
    if opts.quant:
        ref = with_quant(ref, opts.quant)
    from_settings = was_default and bool(opts.settings and opts.settings.default_model)
    with blame_settings(ref.text) if from_settings else nullcontext():
        ref = _preferred_format(ref, opts)
        local, ref = locate(ref, opts, offline_fallback_ok=was_default)
        return load_local(ref, local, opts)


def _with_user_settings(opts: OpenOptions) -> OpenOptions:
    settings = opts.settings if opts.settings is not None else load_settings()
    opts.settings = settings
    if opts.n_ctx is None:
        opts.n_ctx = settings.context_size
    if opts.n_threads is None:
        opts.n_threads = settings.threads
    if opts.rpc is None:
        opts.rpc = settings.rpc
    return opts


def _preferred_format(ref: ModelRef, opts: OpenOptions) -> ModelRef:
    """No quant asked and nothing on disk: the planner may prefer another format than
    the first (AWQ on one NVIDIA GPU, ``planner.awq_ref``); it says why."""
    if ref.quant is not None or find_on_disk(ref) is not None:
        return ref

    def detect() -> Hardware:
        return detect_hardware(capture_native_stderr=opts.capture_native_stderr)

    plan = preferred_awq_plan(ref, detect, PlanRequest(n_ctx=opts.n_ctx), plan_reference)
    if plan is None or plan.quant is None:
        return ref
    _notify(opts, plan.reasons[-1])
    return with_quant(ref, plan.quant)


def locate(
    ref: ModelRef, opts: OpenOptions, *, offline_fallback_ok: bool = False
) -> tuple[LocalModel, ModelRef]:
    """The model's files on disk, pulling them when allowed.

    When MODEL was not given and the default model cannot be downloaded (no
    network), fall back to the catalog's offline model if its package is installed.
    """
    try:
        local = ensure_local(ref, allow_download=opts.allow_download, progress=opts.progress)
        return local, ref
    except (DownloadFailed, ModelNotFound) as exc:
        if not offline_fallback_ok or isinstance(exc, AuthRequired):
            raise
        fallback = _offline_fallback()
        if fallback is None:
            raise
        fallback_ref, fallback_local = fallback
        _notify(
            opts,
            f"default model {ref.display_name} is not available ({exc.message}); "
            f"using the offline model {fallback_ref.display_name}",
        )
        return fallback_local, fallback_ref


def _offline_fallback() -> tuple[ModelRef, LocalModel] | None:
    name = load_catalog().offline_fallback
    if name is None:
        return None
    ref, _ = resolve_model(name)
    local = find_on_disk(ref)
    return (ref, local) if local is not None else None


def load_local(ref: ModelRef, local: LocalModel, opts: OpenOptions) -> LoadedModel:
    """Check, plan, load and pick the chat format for files already on disk."""
    facts, chat_format = describe(ref, local)
    hardware = detect_hardware(include_build=True, capture_native_stderr=opts.capture_native_stderr)
    hardware = with_workers(hardware, opts.rpc, opts.link)
    request = PlanRequest(
        n_ctx=opts.n_ctx,
        n_threads=opts.n_threads,
        n_parallel=opts.parallel if isinstance(opts.parallel, int) else 1,
        parallel_auto=opts.parallel == PARALLEL_AUTO,
    )
    plan = format_named(local.format).plan(local, hardware, request)
    plan.raise_if_not_fits()
    _warn_beyond_training(opts, facts.n_ctx_train)
    backend = open_backend(plan, local.path, opts.settings_overrides)
    for note in backend.load_report.retries:
        _notify(opts, note)
    mark_used(local)
    return LoadedModel(ref, local, plan, backend, chat_format, opts.settings)


def cancel_loads() -> None:
    """Stop the model loads in flight (an app quitting during one); they end as errors."""
    cancel_engine_loads()


def _warn_beyond_training(opts: OpenOptions, trained: int | None) -> None:
    """A context the model was not trained for loads, but replies past it degrade."""
    if opts.n_ctx and trained and (line := beyond_training_line(opts.n_ctx, trained)):
        _notify(opts, line)


def _notify(opts: OpenOptions, text: str) -> None:
    if opts.notice is not None:
        opts.notice(text)
    else:
        print(f"localchat: {text}", file=sys.stderr)
