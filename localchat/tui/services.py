"""Everything the app asks of the rest of localchat, in one place and without Textual.

Each function imports its package lazily and degrades (``None``, "unknown") when a piece
is not there yet, so the screens work on a partial install and light up as it fills in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from localchat.units import format_bytes as format_size
from localchat.units import format_eta  # noqa: F401

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

    # Textual draws on the terminal's stderr: never point fd 2 at a log file while loading.
    options.setdefault("capture_native_stderr", False)
    accepted = getattr(api, "OpenOptions", None)
    fields = getattr(accepted, "__dataclass_fields__", None)
    if fields is not None:
        options = {k: v for k, v in options.items() if k in fields}
    return api.open_model(model, **options)


def catalog_rows(*, with_fit: bool = False) -> list[ModelRow]:
    """One row per catalog model and quant (GGUF and pip-delivered); fit badges on request."""
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
    return rows + local_rows(_paths_on_disk(rows), {row.key.lower() for row in rows})


def _paths_on_disk(rows: list[ModelRow]) -> set[str]:
    paths = set()
    for row in rows:
        if row.on_disk:
            local = find_local(row.key)
            if local is not None:
                paths.add(str(local.path))
    return paths


def hub_rows(repo: str) -> list[ModelRow]:
    """Quants of a typed-in ``owner/repo``, listed from the hub ([] when it cannot be)."""
    try:
        from localchat.hub.client import fetch_listing
        from localchat.hub.resolve import group_gguf_files, remote_files

        _commit, entries = fetch_listing(repo, "main")
        groups = group_gguf_files(remote_files(entries))
    except Exception:
        return []
    return [
        ModelRow(
            f"{repo}:{g.quant}", repo, g.quant, g.size_bytes, "", is_on_disk(f"{repo}:{g.quant}")
        )
        for g in groups
    ]


def with_fit(row: ModelRow, hardware: Any, *, offline: bool = True) -> ModelRow:
    from dataclasses import replace

    return replace(row, fit=fit_for(row.key, hardware, offline=offline))


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


def fit_for(key: str, hardware: Any, *, offline: bool = True) -> Fit:
    """The planner's verdict for this machine, or "unknown" when it cannot say."""
    plan = plan_for(key, hardware, offline=offline)
    return fit_from_plan(plan) if plan is not None else Fit("unknown")


def plan_for(key: str, hardware: Any, *, offline: bool = True) -> Any:
    """The planner's plan: local headers or catalog figures, or (``offline=False``) the
    remote GGUF headers read by HTTP Range."""
    if hardware is None:
        return None
    try:
        from localchat import planner
        from localchat.catalog import load_catalog
        from localchat.reference import parse_model_ref

        ref = parse_model_ref(key, load_catalog())
        return planner.plan_reference(ref, hardware, offline=offline)
    except Exception:
        return None


def fit_from_plan(plan: Any) -> Fit:
    fits = getattr(plan, "fits", True)
    gpu = getattr(plan, "n_gpu_layers", None)
    total = getattr(plan, "n_layers", None)
    detail = describe_plan(plan)
    if not fits:
        return Fit("does not fit", detail)
    if gpu is None or total is None:
        return Fit("fits", detail)
    if gpu <= 0:
        return Fit("CPU only", detail)
    if gpu >= total:  # llama.cpp counts n_layers + 1 for "everything, output included"
        return Fit("full GPU", detail)
    return Fit(f"partial {gpu}/{total}", detail)


def describe_plan(plan: Any) -> str:
    """The plan for the details pane: quant, layers, context, memory per device, reasons."""
    if plan is None:
        return "No plan (the planner could not read this model)."
    lines = [
        f"plan: {getattr(plan, 'quant', '?')} · ctx {getattr(plan, 'n_ctx', '?')}"
        f" · GPU layers {getattr(plan, 'n_gpu_layers', '?')}/{getattr(plan, 'n_layers', '?')}",
    ]
    for device in getattr(plan, "devices", ()) or ():
        total = getattr(device, "total_bytes", None)
        lines.append(f"  {getattr(device, 'device', '?')}: {format_size(total)}")
    speed = getattr(plan, "predicted_tok_s", None)
    if speed:
        lines.append(f"  about {speed:.0f} tok/s predicted")
    lines += [f"- {reason}" for reason in getattr(plan, "reasons", None) or []]
    return "\n".join(lines)


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
    try:
        from localchat import store

        installed = store.list_local()
    except Exception:
        return []
    rows = []
    for model in installed:
        quant = model.quant or "?"
        if model.path in known_paths or model.format != "gguf" or model.source == "pip":
            continue
        if f"{model.name}:{quant}".lower() in known_keys:
            continue
        key = model.path if model.source == "path" or not model.repo_id else model.key
        description = f"on disk ({model.source})"
        rows.append(ModelRow(key, model.name, quant, model.size_bytes, description, True))
    return rows
