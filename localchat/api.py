"""localchat as a Python package: open a model by name, stream a chat, read the stats.

    from localchat.api import open_model
    from localchat.engine.base import Message

    model = open_model("qwen2.5-0.5b")            # catalog name, owner/repo[:QUANT], or a path
    for piece in model.stream_chat([Message("user", "Hello")]):
        print(piece, end="", flush=True)
    print(model.last_stats.decode_tokens_per_s)
    model.close()

MODEL forms are those of ``localchat ask -m``.  Errors are ``localchat.errors``
exceptions.  The CLI and the TUI are both built on this module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from localchat.catalog import load_catalog
from localchat.engine.base import GenerationStats, Message, SamplingParams
from localchat.errors import AuthRequired, DownloadFailed, ModelNotFound
from localchat.reference import ModelRef, parse_model_ref
from localchat.store import LocalModel

Notice = Callable[[str], None]


@dataclass
class OpenOptions:
    """How to open a model; every field is optional."""

    n_ctx: int | None = None
    quant: str | None = None
    allow_download: bool = True
    progress: Callable[[Any], None] | None = None
    notice: Notice | None = None  # one-line notes for the user (fallbacks, retries)
    settings_overrides: dict[str, Any] = field(default_factory=dict)  # backend load settings
    capture_native_stderr: bool = True  # False inside the TUI, which draws on stderr


class LoadedModel:
    """A model loaded in the engine; stays loaded until ``close()``."""

    def __init__(self, ref: ModelRef, local: LocalModel, plan: Any, backend: Any, fmt: Any):
        self.ref = ref
        self.local = local
        self.plan = plan
        self.backend = backend
        self.format = fmt

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def quant(self) -> str | None:
        return self.local.quant

    @property
    def path(self) -> Path:
        return self.local.path

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    @property
    def plan_summary(self) -> dict[str, Any]:
        summary = dict(self.plan.to_json()) if self.plan is not None else {}
        summary.update(self.backend.settings.describe())  # what was loaded, after any retry
        summary["load_s"] = round(self.backend.load_report.load_s, 3)
        summary["load_retries"] = list(self.backend.load_report.retries)
        return summary

    @property
    def last_stats(self) -> GenerationStats:
        return self.backend.last_stats

    def default_sampling(self) -> SamplingParams:
        """The model's recommended sampling: catalog entry, else the chat format's."""
        values: dict[str, float] = dict(getattr(self.format, "default_sampling", {}) or {})
        entry = self.ref.entry
        if entry is not None:
            values.update(entry.sampling)
        known = {k: v for k, v in values.items() if k in SamplingParams.__dataclass_fields__}
        return SamplingParams(**known)  # type: ignore[arg-type]

    def stream_chat(
        self, messages: Sequence[Message], sampling: SamplingParams | None = None
    ) -> Iterator[str]:
        """Yield the reply as text pieces; close the iterator to stop generating."""
        prompt = self.format.prompt(list(messages))
        return self.backend.stream(prompt, sampling or self.default_sampling())

    def render_prompt(self, messages: Sequence[Message]) -> str:
        return self.format.render(list(messages))

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def reply_parser(self) -> Any:
        return self.format.reply_parser()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_ref(model: str | None) -> tuple[ModelRef, bool]:
    """Parse MODEL (None → the configured default).  Returns (ref, was_default)."""
    catalog = load_catalog()
    if model:
        return parse_model_ref(model, catalog), False
    return parse_model_ref(configured_default_model() or catalog.default_model, catalog), True


def configured_default_model() -> str | None:
    try:
        from localchat.settings import load_settings
    except ImportError:
        return None
    return getattr(load_settings(), "default_model", None) or None


def open_model(model: str | None = None, **options: Any) -> LoadedModel:
    """Find (or pull), plan and load MODEL.  Keyword options: see ``OpenOptions``."""
    opts = OpenOptions(**options)
    ref, was_default = resolve_ref(model)
    if opts.quant:
        ref = replace(ref, quant=opts.quant)
    local, ref = locate(ref, opts, offline_fallback_ok=was_default)
    return load_local(ref, local, opts)


def locate(
    ref: ModelRef, opts: OpenOptions, *, offline_fallback_ok: bool = False
) -> tuple[LocalModel, ModelRef]:
    """The model's files on disk, pulling them when allowed.

    When MODEL was not given and the default model cannot be downloaded (no
    network), fall back to the catalog's offline model if its package is installed.
    """
    from localchat.hub import ensure_local

    try:
        return ensure_local(ref, allow_download=opts.allow_download, progress=opts.progress), ref
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
    from localchat.store import find_local

    catalog = load_catalog()
    if catalog.offline_fallback is None:
        return None
    ref = parse_model_ref(catalog.offline_fallback, catalog)
    local = find_local(ref)
    return (ref, local) if local is not None else None


def load_local(ref: ModelRef, local: LocalModel, opts: OpenOptions) -> LoadedModel:
    """Validate, plan, load and pick the chat format for files already on disk."""
    from localchat.engine import open_backend
    from localchat.formats import resolve_format
    from localchat.gguf import read_gguf_metadata, validate_gguf
    from localchat.hardware import detect_hardware
    from localchat.planner import plan_for_file

    for path in local.files:
        validate_gguf(path)
    metadata = read_gguf_metadata(local.path)
    fmt = resolve_format(ref.entry, metadata)
    hardware = detect_hardware(include_build=True, capture_native_stderr=opts.capture_native_stderr)
    plan = plan_for_file(local.path, hardware, n_ctx=opts.n_ctx)
    plan.raise_if_not_fits()
    backend = open_backend(plan, local.path, opts.settings_overrides)
    for note in backend.load_report.retries:
        _notify(opts, note)
    _record_usage(local)
    return LoadedModel(ref, local, plan, backend, fmt)


def _record_usage(local: LocalModel) -> None:
    try:
        from localchat.store import mark_used
    except ImportError:
        return
    mark_used(local)


def _notify(opts: OpenOptions, text: str) -> None:
    if opts.notice is not None:
        opts.notice(text)
    else:
        print(f"localchat: {text}", file=sys.stderr)
