"""localchat as a Python package: open a model by name, stream a chat, read the stats.

    from localchat.api import open_model
    from localchat.types import Message

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from localchat.catalog import load_catalog
from localchat.errors import AuthRequired, DownloadFailed, LocalchatError, ModelNotFound
from localchat.reference import ModelRef, parse_model_ref, with_quant
from localchat.settings import Settings, load_settings
from localchat.store import LocalModel, mark_used
from localchat.types import GenerationStats, Message, PromptSpec, SamplingParams, TextStream

Notice = Callable[[str], None]

# A reply's length limit unless the model's format, settings.toml or the caller set one
# (README, "Reply length").  Base models get a shorter one from their chat format.
DEFAULT_MAX_TOKENS = 2048


@dataclass
class OpenOptions:
    """How to open a model; every field is optional."""

    n_ctx: int | None = None
    n_threads: int | None = None  # CPU threads; None: settings.toml's, else from the hardware
    quant: str | None = None
    allow_download: bool = True
    progress: Callable[[Any], None] | None = None
    notice: Notice | None = None  # one-line notes for the user (fallbacks, retries)
    settings_overrides: dict[str, Any] = field(default_factory=dict)  # backend load settings
    settings: Settings | None = None  # the user's settings; None reads settings.toml
    capture_native_stderr: bool = True  # False inside the TUI, which draws on stderr
    engine: str | None = None  # an OpenAI-compatible base URL; else LOCALCHAT_ENGINE
    local: bool = False  # in this process even when a localchat server is running
    api_key: str | None = None  # for the engine or server; else LOCALCHAT_API_KEY
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..."; None: settings.toml's
    link: str | None = None  # network speed to the workers ("1Gbit"), for the plan


class LoadedModel:
    """A model loaded in the engine; stays loaded until ``close()``."""

    def __init__(
        self,
        ref: ModelRef,
        local: LocalModel | None,  # None: a server runs it (``engine.remote``)
        plan: Any,
        backend: Any,
        fmt: Any,
        user_settings: Settings | None = None,
    ):
        self.ref = ref
        self.local = local
        self.plan = plan
        self.backend = backend
        self.format = fmt
        self.user_settings = user_settings or Settings()

    @property
    def name(self) -> str:
        return self.local.name if self.local is not None else self.ref.display_name

    @property
    def quant(self) -> str | None:
        return self.local.quant if self.local is not None else self.ref.quant

    @property
    def path(self) -> Path | None:
        return self.local.path if self.local is not None else None

    @property
    def engine_label(self) -> str:
        """Where the model runs: "in-process llama.cpp", "localchat server http://...", ..."""
        described = self.backend.settings.describe()
        backend, engine = described["backend"], described.get("engine")
        return f"{backend} {engine}" if engine else f"in-process {backend}"

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

    @property
    def system_prompt(self) -> str | None:
        """The system prompt a new conversation starts with (settings.toml's), if any."""
        return self.user_settings.system_prompt or None

    def default_sampling(self) -> SamplingParams:
        """Sampling for this model: ``DEFAULT_MAX_TOKENS``, then the chat format's and the
        catalog entry's recommendations, then the user's settings over them."""
        values: dict[str, Any] = {"max_tokens": DEFAULT_MAX_TOKENS, **self.format.default_sampling}
        entry = self.ref.entry
        if entry is not None:
            values.update(entry.sampling)
        known = {k: v for k, v in values.items() if k in SamplingParams.__dataclass_fields__}
        return self.user_settings.sampling(SamplingParams(**known))

    def stream_chat(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
    ) -> TextStream:
        """The reply as text pieces; ``close()`` it to stop generating.

        ``last_stats.finish_reason`` says why it ended: stop, length (``max_tokens``),
        repetition (it began to loop; ``engine.repetition``) or cancelled.  ``stop``
        adds stop strings to the chat format's.
        """
        prompt = self.format.prompt(list(messages))
        return self._stream(replace(prompt, stop_strings=(*prompt.stop_strings, *stop)), sampling)

    def stream_completion(
        self, text: str, sampling: SamplingParams | None = None, stop: Sequence[str] = ()
    ) -> TextStream:
        """Continue ``text`` as it is, without the chat format (a raw completion)."""
        return self._stream(PromptSpec(text=text, stop_strings=tuple(stop)), sampling)

    def _stream(self, prompt: PromptSpec, sampling: SamplingParams | None) -> TextStream:
        from localchat.engine.repetition import guard_stream

        sampling = sampling or self.default_sampling()
        stream = self.backend.stream(prompt, sampling)
        return guard_stream(stream) if sampling.stop_on_repetition else stream

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


def resolve_ref(
    model: str | ModelRef | None, settings: Settings | None = None
) -> tuple[ModelRef, bool]:
    """Parse MODEL (None → settings.toml's default_model, else the catalog's).
    Returns (ref, was_default)."""
    catalog = load_catalog()
    if isinstance(model, ModelRef):
        return model, False
    if model:
        return parse_model_ref(model, catalog), False
    configured = (settings or load_settings()).default_model
    if not configured:
        return parse_model_ref(catalog.default_model, catalog), True
    with _blame_settings(configured):
        return parse_model_ref(configured, catalog), True


@contextmanager
def _blame_settings(configured: str) -> Iterator[None]:
    """Errors about settings.toml's default_model say where that name came from."""
    try:
        yield
    except LocalchatError as exc:
        from localchat.paths import settings_file

        raise type(exc)(
            f"default_model {configured!r} from {settings_file()}: {exc.message}",
            hint=f"{exc.hint + '; ' if exc.hint else ''}change it there or pass -m MODEL",
        ) from exc


def open_model(model: str | ModelRef | None = None, **options: Any) -> LoadedModel:
    """Find (or pull), plan and load MODEL.  Keyword options: see ``OpenOptions``.

    The user's settings (settings.toml, or ``settings=``) apply here, once: the default
    model, context size, sampling and system prompt, for ``ask``, the app and library users.
    With ``engine=URL`` (or ``LOCALCHAT_ENGINE``), or when a localchat server is running
    and ``local`` is false, the model runs there (``engine.endpoints``); MODEL is then
    the server's name for it.
    """
    opts = OpenOptions(**options)
    if opts.settings is None:
        opts.settings = load_settings()
    if opts.n_ctx is None:
        opts.n_ctx = opts.settings.context_size
    if opts.n_threads is None:
        opts.n_threads = opts.settings.threads
    if opts.rpc is None:
        opts.rpc = opts.settings.rpc
    if not isinstance(model, ModelRef) and not opts.rpc:  # RPC workers serve this process
        from localchat.api_remote import open_remote, remote_settings_for

        remote = remote_settings_for(model, opts)
        if remote is not None:
            return open_remote(remote, opts)
    ref, was_default = resolve_ref(model, opts.settings)
    if opts.quant:
        ref = with_quant(ref, opts.quant)
    from_settings = was_default and bool(opts.settings.default_model)
    with _blame_settings(ref.text) if from_settings else nullcontext():
        if ref.quant is None:
            ref = _prefer_awq(ref, opts)
        local, ref = locate(ref, opts, offline_fallback_ok=was_default)
        return load_local(ref, local, opts)


def _prefer_awq(ref: ModelRef, opts: OpenOptions) -> ModelRef:
    """A catalog model with GGUF and AWQ, no format asked, nothing on disk yet: AWQ when the
    planner says it fits one NVIDIA GPU whole and the backend is installed (``planner.awq``)."""
    from localchat.planner.awq import awq_backend_installed

    entry = ref.entry
    if entry is None or entry.awq is None or entry.gguf is None or not awq_backend_installed():
        return ref
    from localchat.hardware import detect_hardware
    from localchat.store import find_local

    hardware = detect_hardware(capture_native_stderr=opts.capture_native_stderr)
    if not any(gpu.vendor == "nvidia" for gpu in hardware.gpus) or find_local(ref) is not None:
        return ref
    from localchat.planner import PlanRequest, plan_reference

    plan = plan_reference(ref, hardware, PlanRequest(n_ctx=opts.n_ctx))
    if plan.format != "awq":
        return ref
    _notify(opts, plan.reasons[-1])
    return with_quant(ref, "AWQ")


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
    from localchat.hardware.rpc import with_workers
    from localchat.planner import PlanRequest, plan_for_file

    if local.format == "awq":
        return _load_awq(ref, local, opts)
    for path in local.files:
        validate_gguf(path)
    metadata = read_gguf_metadata(local.path)
    fmt = resolve_format(ref.entry, metadata)
    hardware = detect_hardware(include_build=True, capture_native_stderr=opts.capture_native_stderr)
    hardware = with_workers(hardware, opts.rpc, opts.link)
    plan = plan_for_file(
        local.path, hardware, n_ctx=opts.n_ctx, request=PlanRequest(n_threads=opts.n_threads)
    )
    plan.raise_if_not_fits()
    _warn_beyond_training(opts, metadata)
    backend = open_backend(plan, local.path, opts.settings_overrides)
    for note in backend.load_report.retries:
        _notify(opts, note)
    mark_used(local)
    return LoadedModel(ref, local, plan, backend, fmt, opts.settings)


def _load_awq(ref: ModelRef, local: LocalModel, opts: OpenOptions) -> LoadedModel:
    """An AWQ checkpoint folder: checked, planned whole on one device, loaded by the engine."""
    from localchat.engine import open_backend
    from localchat.formats import resolve_format
    from localchat.hardware import detect_hardware
    from localchat.planner import PlanRequest
    from localchat.planner.awq import AwqFigures, plan_awq, require_awq
    from localchat.safetensors import read_checkpoint
    from localchat.safetensors.metadata import hf_metadata

    checkpoint = read_checkpoint(local.path)
    require_awq(checkpoint)
    fmt = resolve_format(ref.entry, hf_metadata(local.path, checkpoint.config))
    hardware = detect_hardware(capture_native_stderr=opts.capture_native_stderr)
    request = PlanRequest(n_ctx=opts.n_ctx, n_threads=opts.n_threads)
    figures = AwqFigures.from_checkpoint(checkpoint)
    plan = plan_awq(figures, hardware, request, model_name=local.name)
    plan.raise_if_not_fits()
    backend = open_backend(plan, local.path, opts.settings_overrides)
    mark_used(local)
    return LoadedModel(ref, local, plan, backend, fmt, opts.settings)


def cancel_loads() -> None:
    """Stop the model loads in flight (an app quitting during one); they end as errors."""
    from localchat.engine import cancel_loads as cancel

    cancel()


def _warn_beyond_training(opts: OpenOptions, metadata: Mapping[str, Any]) -> None:
    """A context the model was not trained for loads, but replies past it degrade."""
    from localchat.planner.reasons import beyond_training_line

    trained = metadata.get(f"{metadata.get('general.architecture')}.context_length")
    if (
        opts.n_ctx
        and isinstance(trained, int)
        and (line := beyond_training_line(opts.n_ctx, trained))
    ):
        _notify(opts, line)


def _notify(opts: OpenOptions, text: str) -> None:
    if opts.notice is not None:
        opts.notice(text)
    else:
        print(f"localchat: {text}", file=sys.stderr)
