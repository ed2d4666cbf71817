"""Everything the app asks of the rest of localchat, in one place and without Textual.

A thin door onto ``localchat.services`` (the CLI's and the server's door too): rows for
the Models screen, fit badges from the planner's plans, hub search with a verdict per
repo, pull and remove.  ``services``
loads its parts on first use, so the chat opens without loading the planner or the hub.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from localchat import services
from localchat.errors import LocalchatError, ModelNotFound
from localchat.services import Conversation, HistoryStore, ReplyRecorder, StoredMessage
from localchat.units import format_bytes as format_size
from localchat.units import format_eta

if TYPE_CHECKING:
    from localchat.services import (
        Hardware,
        HubRepo,
        LoadedModel,
        LocalModel,
        Plan,
        ProgressCallback,
        SearchHit,
    )

__all__ = [
    "Conversation",
    "Fit",
    "HistoryStore",
    "HubRow",
    "Loader",
    "ModelRow",
    "PullCancelled",
    "QuantOption",
    "ReplyRecorder",
    "StoredMessage",
    "format_eta",
    "format_size",
]

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


# ---------------------------------------------------------------------- hub search


@dataclass(frozen=True)
class QuantOption:
    """One quant of a hub repo as the planner weighed it for this machine."""

    key: str  # "owner/repo:QUANT": what pull and open_model accept
    quant: str
    size: str
    placement: str  # "33/33", "20/33, 8 exp. in RAM", "does not fit"
    n_ctx: int
    tok_s: str
    loss: str
    chosen: bool


@dataclass(frozen=True)
class HubRow:
    """A hub search result with its verdict for this machine (``planned`` False: pending)."""

    key: str  # the repo id
    params: str
    arch: str
    license: str
    downloads: str
    verdict: str  # short, for the verdict column
    summary: str = ""  # the verdict in one line
    pull_key: str | None = None  # "owner/repo:QUANT" of the planner's quant
    options: tuple[QuantOption, ...] = ()
    planned: bool = False

    @property
    def detail(self) -> str:
        facts = " · ".join(x for x in (self.params, self.arch, self.license) if x and x != "?")
        lines = [f"{self.key} · {facts} · {self.downloads} downloads", self.summary]
        if self.pull_key:
            quant = self.pull_key.rsplit(":", 1)[1]
            lines.append(f"Enter: every quant · ^g pulls {quant}")
        return "\n".join(line for line in lines if line)


HubRowsCallback = Callable[[list[HubRow]], object]
HubRowCallback = Callable[[HubRow], object]


def search_hub(
    query: str,
    *,
    cancel: threading.Event,
    on_rows: HubRowsCallback,
    on_row: HubRowCallback,
    time_budget_s: float = 60.0,
) -> int:
    """Search the hub and plan each repo for this machine: ``on_rows`` gets the repos as
    soon as the hub listed them (verdicts pending), ``on_row`` each verdict as it comes.
    Returns how many repos were found; raises the hub's errors (offline, unreachable)."""
    hardware = services.detect_hardware()
    request = services.SearchRequest(query, time_budget_s=time_budget_s)
    plan_request = services.PlanRequest(n_threads=services.settings_threads())
    outcome = services.search_models(
        request,
        hardware,
        plan_request,
        cancel=cancel,
        on_repos=lambda repos: on_rows([_pending_row(repo) for repo in repos]),
        on_hit=lambda hit: on_row(hub_row(hit)),
    )
    for hit in outcome.hits:  # the ones no worker reached: timed out or cancelled
        if hit.verdict.status in ("timed out", "cancelled") and not cancel.is_set():
            on_row(hub_row(hit))
    return outcome.found


def _pending_row(repo: HubRepo) -> HubRow:
    return HubRow(
        key=repo.repo_id,
        params=format_count(repo.parameters),
        arch=repo.architecture or "?",
        license=f"gated {repo.license}".strip() if repo.gated else repo.license or "?",
        downloads=format_count(repo.downloads),
        verdict="planning…",
        summary="planning for this machine…",
    )


def hub_row(hit: SearchHit) -> HubRow:
    verdict = hit.verdict
    plan = verdict.plan
    options = tuple(_option(hit.repo.repo_id, row, plan) for row in quant_rows(plan))
    return replace(
        _pending_row(hit.repo),
        verdict=verdict.short,
        summary=verdict.summary,
        pull_key=hit.pull_key,
        options=options,
        planned=True,
    )


def quant_rows(plan: Plan | None) -> list[dict[str, Any]]:
    return services.quant_options(plan) if plan is not None else []


def _option(repo_id: str, row: dict[str, Any], plan: Plan | None) -> QuantOption:
    n_layers = plan.n_layers if plan is not None else 0
    placement = "does not fit"
    if row["fits"]:
        placement = f"{row['n_gpu_layers']}/{n_layers + 1}"
        if row["n_cpu_moe"]:
            placement += f", {row['n_cpu_moe']} exp. in RAM"
    quality = row["quality"]
    loss = "?"
    if quality is not None:
        pct = quality["ppl_increase_pct"]
        approx = "~" if quality["basis"] == "estimated" else ""
        loss = "none" if quality["basis"] == "reference" else f"{approx}+{pct:.2g} %"
    return QuantOption(
        key=f"{repo_id}:{row['quant']}",
        quant=str(row["quant"]),
        size=format_size(row["weights"] or None),
        placement=placement,
        n_ctx=int(row["n_ctx"]),
        tok_s=f"{row['predicted_tok_s']:.1f}",
        loss=loss,
        chosen=bool(row["chosen"]),
    )


def format_count(count: int | None) -> str:
    """``8.0B`` parameters, ``90.0k`` downloads; ``?`` when the hub did not say."""
    if not count:
        return "?" if count is None else "0"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)
