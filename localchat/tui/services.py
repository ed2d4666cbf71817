"""Everything the app asks of the rest of localchat, in one place and without Textual.

Each function imports its package lazily and degrades (``None``, "unknown") when a piece
is not there yet, so the screens work on a partial install and light up as it fills in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Loader = Callable[..., Any]


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


def open_model_loader(model: str | None = None, **options: Any) -> Any:
    """``localchat.api.open_model`` with the options this version of it accepts."""
    from localchat import api

    accepted = getattr(api, "OpenOptions", None)
    fields = getattr(accepted, "__dataclass_fields__", None)
    if fields is not None:
        options = {k: v for k, v in options.items() if k in fields}
    return api.open_model(model, **options)


def catalog_rows(*, with_fit: bool = True) -> list[ModelRow]:
    """One row per catalog model and quant (GGUF and pip-delivered)."""
    from localchat.catalog import load_catalog

    rows: list[ModelRow] = []
    catalog = load_catalog()
    hardware = detect_hardware_or_none() if with_fit else None
    for entry in catalog.entries.values():
        quants: list[tuple[str, int | None]] = []
        if entry.gguf is not None:
            quants += [(q.quant, q.size_bytes) for q in entry.gguf.quants.values()]
        elif entry.pip is not None:
            quants.append((entry.pip.quant, entry.pip.size_bytes))
        for quant, size in quants:
            key = f"{entry.name}:{quant}"
            rows.append(
                ModelRow(
                    key=key,
                    name=entry.name,
                    quant=quant,
                    size_bytes=size,
                    description=entry.description,
                    on_disk=is_on_disk(key),
                    fit=fit_for(key, hardware) if with_fit else Fit("unknown"),
                )
            )
    return rows


def hub_rows(repo: str) -> list[ModelRow]:
    """Quants of a typed-in ``owner/repo`` (needs the hub listing; [] when unavailable)."""
    try:
        from localchat import hub

        lister = getattr(hub, "list_quants", None)
        if lister is None:
            return []
        listed = lister(repo)
    except Exception:
        return []
    hardware = detect_hardware_or_none()
    rows = []
    for item in listed:
        quant = str(getattr(item, "quant", item))
        key = f"{repo}:{quant}"
        size = getattr(item, "size_bytes", None)
        rows.append(ModelRow(key, repo, quant, size, "", is_on_disk(key), fit_for(key, hardware)))
    return rows


def is_on_disk(key: str) -> bool:
    try:
        return find_local(key) is not None
    except Exception:
        return False


def find_local(key: str) -> Any:
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref
    from localchat.store import find_local as store_find_local

    return store_find_local(parse_model_ref(key, load_catalog()))


def detect_hardware_or_none() -> Any:
    try:
        from localchat.hardware import detect_hardware

        return detect_hardware()
    except Exception:
        return None


def fit_for(key: str, hardware: Any) -> Fit:
    """The planner's verdict for this machine, or "unknown" when it cannot say."""
    plan = plan_for(key, hardware)
    return fit_from_plan(plan) if plan is not None else Fit("unknown")


def plan_for(key: str, hardware: Any) -> Any:
    if hardware is None:
        return None
    try:
        from localchat import planner
        from localchat.catalog import load_catalog
        from localchat.reference import parse_model_ref

        plan_model = getattr(planner, "plan_model", None)
        if plan_model is None:
            return None
        return plan_model(parse_model_ref(key, load_catalog()), hardware)
    except Exception:
        return None


def fit_from_plan(plan: Any) -> Fit:
    fits = getattr(plan, "fits", True)
    gpu = getattr(plan, "n_gpu_layers", None)
    total = getattr(plan, "n_layers", None)
    reasons = getattr(plan, "reasons", None) or []
    detail = "\n".join(str(r) for r in reasons)
    if not fits:
        return Fit("does not fit", detail)
    if gpu is None or total is None:
        return Fit("fits", detail)
    if gpu <= 0:
        return Fit("CPU only", detail)
    if gpu >= total:
        return Fit("full GPU", detail)
    return Fit(f"partial {gpu}/{total}", detail)


def describe_plan(plan: Any) -> str:
    """Plan text for the details pane."""
    if plan is None:
        return "No plan available (the planner could not read this model yet)."
    for method in ("describe", "summary"):
        fn = getattr(plan, method, None)
        if callable(fn):
            return str(fn())
    to_json = getattr(plan, "to_json", None)
    if callable(to_json):
        return "\n".join(f"{k}: {v}" for k, v in to_json().items())
    return str(plan)


def pull(key: str, progress: Callable[[Any], None]) -> Any:
    """Download a model with progress events; raise ``PullCancelled`` from ``progress``."""
    from localchat import hub
    from localchat.catalog import load_catalog
    from localchat.errors import DownloadFailed
    from localchat.reference import parse_model_ref

    pull_fn = getattr(hub, "pull", None)
    if pull_fn is None:
        raise DownloadFailed(
            "downloads are not available in this build", hint="use `localchat pull`"
        )
    return pull_fn(parse_model_ref(key, load_catalog()), progress=progress)


def remove(key: str) -> bool:
    """Delete a model's files; False when nothing was on disk."""
    from localchat import store
    from localchat.errors import LocalchatError

    local = find_local(key)
    if local is None:
        return False
    remover = getattr(store, "remove", None)
    if remover is None:
        raise LocalchatError("removing models is not available in this build")
    remover(local)
    return True


def format_size(size_bytes: float | None) -> str:
    if size_bytes is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size_bytes) >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{int(size_bytes)} B"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"
