"""Everything the app asks of the rest of localchat, in one place and without Textual.

The engine is reached only through ``localchat.api``; the Models screen's rows come from
the catalog, the store, the planner and the hub.  Heavy packages are imported inside the
functions that need them, so the chat opens without loading the planner or the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from localchat.errors import LocalchatError
from localchat.units import format_bytes as format_size
from localchat.units import format_eta

if TYPE_CHECKING:
    from localchat.api import LoadedModel
    from localchat.hardware.types import Hardware
    from localchat.hub import ProgressCallback
    from localchat.planner import Plan
    from localchat.store import LocalModel

__all__ = ["Fit", "Loader", "ModelRow", "PullCancelled", "format_eta", "format_size"]

Loader = Callable[..., Any]  # ``open_model``'s signature; tests pass a scripted one


class PullCancelled(Exception):
    """Raised from the progress callback to stop a pull (the partial file is kept)."""


@dataclass(frozen=True)
class Fit:
    badge: str  # "full GPU", "partial 20/33", "CPU only", "does not fit", "unknown"
    detail: str = ""


@dataclass(frozen=True)
class ModelRow:
    key: str  # what open_model / pull accept: "name:QUANT" or "owner/repo:QUANT"
    name: str
    quant: str
    size_bytes: int | None
    description: str = ""
    on_disk: bool = False
    fit: Fit = Fit("unknown")


def open_model(model: str | None = None, **options: Any) -> LoadedModel:
    """``localchat.api.open_model`` for the app: llama.cpp's native stderr is left alone,
    because Textual draws on the terminal's stderr."""
    from localchat import api

    return api.open_model(model, capture_native_stderr=False, **options)


def cancel_loads() -> None:
    """Stop a model load under way (the app is quitting)."""
    from localchat import api

    api.cancel_loads()


def catalog_rows() -> list[ModelRow]:
    """One row per catalog model and quant (GGUF and pip-delivered), then the models on
    disk that the catalog does not name.  Fit badges come later (``with_fit``)."""
    from localchat.catalog import load_catalog

    rows: list[ModelRow] = []
    paths_on_disk: set[str] = set()
    for entry in load_catalog().entries.values():
        quants: list[tuple[str, int | None]] = []
        if entry.gguf is not None:
            quants += [(q.quant, q.size_bytes) for q in entry.gguf.quants.values()]
        elif entry.pip is not None:
            quants.append((entry.pip.quant, entry.pip.size_bytes))
        for quant, size in quants:
            key = f"{entry.name}:{quant}"
            local = find_local(key)
            if local is not None:
                paths_on_disk.add(str(local.path))
            on_disk = local is not None
            rows.append(ModelRow(key, entry.name, quant, size, entry.description, on_disk))
    return rows + local_rows(paths_on_disk, {row.key.lower() for row in rows})


def hub_rows(repo: str) -> list[ModelRow]:
    """Quants of a typed-in ``owner/repo``, listed from the hub ([] when it cannot be:
    offline, unknown repo, no GGUF files)."""
    from localchat.hub.client import fetch_listing
    from localchat.hub.resolve import group_gguf_files, remote_files

    try:
        _commit, entries = fetch_listing(repo, "main")
        groups = group_gguf_files(remote_files(entries))
    except LocalchatError:
        return []
    return [
        ModelRow(
            f"{repo}:{g.quant}", repo, g.quant, g.size_bytes, "", is_on_disk(f"{repo}:{g.quant}")
        )
        for g in groups
    ]


def with_fit(row: ModelRow, hardware: Hardware, *, offline: bool = True) -> ModelRow:
    return replace(row, fit=fit_for(row.key, hardware, offline=offline))


def is_on_disk(key: str) -> bool:
    return find_local(key) is not None


def find_local(key: str) -> LocalModel | None:
    """The model's files on disk; None when absent or when ``key`` names no model."""
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref
    from localchat.store import find_local as store_find_local

    try:
        return store_find_local(parse_model_ref(key, load_catalog()))
    except LocalchatError:
        return None


def detect_hardware() -> Hardware:
    from localchat.hardware import detect_hardware as detect

    return detect()


def fit_for(key: str, hardware: Hardware | None, *, offline: bool = True) -> Fit:
    """The planner's verdict for this machine, or "unknown" when it cannot say."""
    plan = plan_for(key, hardware, offline=offline) if hardware is not None else None
    return fit_from_plan(plan) if plan is not None else Fit("unknown")


def plan_for(key: str, hardware: Hardware, *, offline: bool = True) -> Plan | None:
    """The planner's plan: local headers or catalog figures, or (``offline=False``) the
    remote GGUF headers read by HTTP Range.  None when the planner cannot plan it."""
    from localchat import planner
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref

    try:
        ref = parse_model_ref(key, load_catalog())
        return planner.plan_reference(ref, hardware, offline=offline)
    except LocalchatError:
        return None


def fit_from_plan(plan: Plan) -> Fit:
    detail = describe_plan(plan)
    if not plan.fits:
        return Fit("does not fit", detail)
    if plan.n_gpu_layers <= 0:
        return Fit("CPU only", detail)
    if plan.full_offload:
        return Fit("full GPU", detail)
    return Fit(f"partial {plan.gpu_layers_text}", detail)


def describe_plan(plan: Plan | None) -> str:
    """The plan for the details pane: quant, layers, context, memory per device, reasons."""
    if plan is None:
        return "No plan (the planner could not read this model)."
    lines = [f"plan: {plan.quant} · ctx {plan.n_ctx} · GPU layers {plan.gpu_layers_text}"]
    lines += [f"  {device.device}: {format_size(device.total_bytes)}" for device in plan.devices]
    if plan.predicted_tok_s:
        lines.append(f"  about {plan.predicted_tok_s:.0f} tok/s predicted")
    lines += [f"- {reason}" for reason in plan.reasons]
    return "\n".join(lines)


def pull(key: str, progress: ProgressCallback) -> LocalModel:
    """Download a model with progress events; raise ``PullCancelled`` from ``progress``."""
    from localchat import hub
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref

    return hub.pull(parse_model_ref(key, load_catalog()), progress=progress)


def remove(key: str) -> bool:
    """Delete a model's files; False when nothing was on disk."""
    from localchat import store

    local = find_local(key)
    if local is None:
        return False
    wanted = str(local.path)
    for installed in store.list_local():
        if installed.path == wanted or wanted in installed.files:
            store.remove(installed)
            return True
    return False


def local_rows(known_paths: set[str], known_keys: Collection[str] = ()) -> list[ModelRow]:
    """Models on disk that the catalog rows do not cover (other HF repos, local files)."""
    from localchat import store

    rows = []
    for model in store.list_local():
        quant = model.quant or "?"
        if model.path in known_paths or model.format != "gguf" or model.source == "pip":
            continue
        if f"{model.name}:{quant}".lower() in known_keys:
            continue
        key = model.path if model.source == "path" or not model.repo_id else model.key
        description = f"on disk ({model.source})"
        rows.append(ModelRow(key, model.name, quant, model.size_bytes, description, True))
    return rows
