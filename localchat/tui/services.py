"""Everything the app asks of the rest of localchat, in one place and without Textual.

A thin door onto ``localchat.services`` (the CLI's and the server's door too): rows for
the Models screen, fit badges from the planner's plans, pull and remove.  ``services``
loads its parts on first use, so the chat opens without loading the planner or the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from localchat import services
from localchat.errors import LocalchatError, ModelNotFound
from localchat.units import format_bytes as format_size
from localchat.units import format_eta

if TYPE_CHECKING:
    from localchat.services import Hardware, LoadedModel, LocalModel, Plan, ProgressCallback

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
    """``localchat.services.open_model`` for the app: llama.cpp's native stderr is left
    alone, because Textual draws on the terminal's stderr."""
    return services.open_model(model, capture_native_stderr=False, **options)


def cancel_loads() -> None:
    """Stop a model load under way (the app is quitting)."""
    services.cancel_loads()


def catalog_rows() -> list[ModelRow]:
    """One row per catalog model and quant, then the models on disk that the catalog does
    not name.  Fit badges come later (``with_fit``)."""
    rows: list[ModelRow] = []
    paths_on_disk: set[str] = set()
    for entry in services.catalog_entries():
        for quant, size in services.listed_quants(entry).items():
            key = f"{entry.name}:{quant}"
            local = find_local(key)
            if local is not None:
                paths_on_disk.add(str(local.path))
            on_disk = local is not None
            rows.append(ModelRow(key, entry.name, quant, size, entry.description, on_disk))
    return rows + local_rows(paths_on_disk, {row.key.lower() for row in rows})


def hub_rows(repo: str) -> list[ModelRow]:
    """Quants of a typed-in ``owner/repo``, listed from the hub ([] when it cannot be:
    offline, unknown repo, nothing localchat runs)."""
    try:
        quants = services.hub_quants(repo)
    except LocalchatError:
        return []
    return [
        ModelRow(f"{repo}:{quant}", repo, quant, size, "", is_on_disk(f"{repo}:{quant}"))
        for quant, size in quants.items()
    ]


def with_fit(row: ModelRow, hardware: Hardware, *, offline: bool = True) -> ModelRow:
    return replace(row, fit=fit_for(row.key, hardware, offline=offline))


def is_on_disk(key: str) -> bool:
    return find_local(key) is not None


def find_local(key: str) -> LocalModel | None:
    """The model's files on disk; None when absent or when ``key`` names no model."""
    try:
        ref, _ = services.resolve_model(key)
        return services.find_on_disk(ref)
    except LocalchatError:
        return None


def detect_hardware() -> Hardware:
    return services.detect_hardware()


def fit_for(key: str, hardware: Hardware | None, *, offline: bool = True) -> Fit:
    """The planner's verdict for this machine, or "unknown" when it cannot say."""
    plan = plan_for(key, hardware, offline=offline) if hardware is not None else None
    return fit_from_plan(plan) if plan is not None else Fit("unknown")


def plan_for(key: str, hardware: Hardware, *, offline: bool = True) -> Plan | None:
    """The planner's plan: local headers or catalog figures, or (``offline=False``) the
    remote headers read by HTTP Range.  None when the planner cannot plan it."""
    try:
        return services.plan_model(key, hardware, offline=offline)
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
    return services.pull_model(key, progress=progress)


def remove(key: str) -> bool:
    """Delete a model's files (as ``localchat rm`` would); False when nothing was on disk."""
    try:
        removal = services.removal_for(key)
    except ModelNotFound:
        return False
    services.remove_models(removal)
    return True


def local_rows(known_paths: set[str], known_keys: Collection[str] = ()) -> list[ModelRow]:
    """Models on disk that the catalog rows do not cover (other HF repos, local files)."""
    rows = []
    for model in services.installed_models():
        quant = model.quant or "?"
        if str(model.path) in known_paths or model.source == "pip":
            continue
        if f"{model.name}:{quant}".lower() in known_keys:
            continue
        key = str(model.path) if model.source == "path" or not model.repo_id else model.key
        description = f"on disk ({model.source})"
        rows.append(ModelRow(key, model.name, quant, model.size_bytes, description, True))
    return rows
