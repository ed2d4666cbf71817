"""Planning a MODEL that has (or is) an AWQ form, next to its GGUF quants.

* a checkpoint folder, a catalog model with only ``[awq]``, ``MODEL:AWQ``, or a hub repo
  with safetensors and no GGUF: an AWQ plan (shard headers locally or by HTTP Range;
  models.toml's figures offline);
* a catalog model with both formats and no format asked: both are planned and
  ``planner.awq.choose_format`` picks, saying why;
* when AWQ was asked for but does not fit one GPU, the reasons say what GGUF would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from localchat.catalog import AWQ_QUANT
from localchat.errors import DownloadFailed, LocalchatError
from localchat.hardware.types import Hardware
from localchat.hub.ranges import read_remote_checkpoint
from localchat.planner.awq import (
    AwqFigures,
    AwqPlan,
    awq_backend_installed,
    choose_format,
    gguf_alternative_line,
    plan_awq,
    require_awq,
)
from localchat.planner.plan import Plan, PlanRequest
from localchat.planner.sources import repo_files
from localchat.reference import ModelRef
from localchat.safetensors import read_checkpoint

PlanGguf = Callable[[ModelRef, PlanRequest], Plan]  # the GGUF planner, for comparison
PlanReference = Callable[[ModelRef, Hardware, PlanRequest], Plan]  # planner.plan_reference


def asks_awq(ref: ModelRef, request: PlanRequest) -> bool:
    return (ref.quant or request.quant or "").upper() == AWQ_QUANT


def preferred_awq_plan(
    ref: ModelRef,
    detect: Callable[[], Hardware],
    request: PlanRequest,
    plan_reference: PlanReference,
) -> Plan | None:
    """The AWQ plan when planning prefers AWQ for ``ref`` (else None: GGUF's choice stands).

    Only a catalog model with both formats and no quant asked can go either way, and AWQ
    only wins where it fits one NVIDIA GPU whole with its backend installed
    (``choose_format``): the cheap checks come first (``detect`` reads the hardware),
    since planning reads remote headers.
    """
    entry = ref.entry
    if ref.quant is not None or entry is None or entry.awq is None or entry.gguf is None:
        return None
    if not awq_backend_installed():
        return None
    hardware = detect()
    if not any(gpu.vendor == "nvidia" for gpu in hardware.gpus):
        return None
    plan = plan_reference(ref, hardware, request)
    return plan if plan.format == "awq" else None


def plan_with_awq(
    ref: ModelRef,
    hardware: Hardware,
    request: PlanRequest,
    plan_gguf: PlanGguf,
    *,
    offline: bool = False,
) -> Plan | None:
    """The plan when ``ref`` involves AWQ; None when it is a GGUF-only question."""
    if ref.kind == "path" and ref.path is not None and Path(ref.path).is_dir():
        return _plan_folder(Path(ref.path), hardware, request)
    entry = ref.entry
    has_gguf = entry is not None and entry.gguf is not None
    has_awq = entry is not None and entry.awq is not None
    if ref.kind == "hub" and (entry is None or ref.repo_id != getattr(entry.awq, "repo", None)):
        return _plan_hub_awq(ref, hardware, request, offline) if asks_awq(ref, request) else None
    if not has_awq or ((ref.quant or request.quant) and not asks_awq(ref, request)):
        return None
    awq_request = replace(request, quant=None)
    awq = _plan_catalog_awq(ref, hardware, awq_request, offline)
    if not has_gguf:
        return awq
    gguf = _gguf_or_none(plan_gguf, replace(ref, quant=None), awq_request)
    if asks_awq(ref, request):
        if gguf is not None and not (awq.fits and awq.torch_device.startswith("cuda")):
            awq.reasons.append(gguf_alternative_line(awq, gguf))
        return awq
    fmt, why = choose_format(awq, gguf, backend_installed=awq_backend_installed())
    chosen = awq if fmt == "awq" or gguf is None else gguf
    chosen.reasons.append(why)
    return chosen


def plan_hub_fallback(
    ref: ModelRef, hardware: Hardware, request: PlanRequest, *, offline: bool = False
) -> Plan | None:
    """A hub repo with no GGUF: plan it as AWQ if it is one (else None)."""
    if ref.kind != "hub" or ref.entry is not None or request.quant:
        return None
    try:
        return _plan_hub_awq(ref, hardware, request, offline)
    except LocalchatError:
        return None


def _plan_folder(folder: Path, hardware: Hardware, request: PlanRequest) -> AwqPlan:
    checkpoint = read_checkpoint(folder)
    require_awq(checkpoint)
    plan = plan_awq(AwqFigures.from_checkpoint(checkpoint), hardware, replace(request, quant=None))
    plan.reasons.append("read the checkpoint's config.json and safetensors headers")
    return plan


def _plan_hub_awq(
    ref: ModelRef, hardware: Hardware, request: PlanRequest, offline: bool
) -> AwqPlan:
    if offline:
        raise DownloadFailed(f"{ref.repo_id} is not in the catalog", hint="plan it when online")
    repo = ref.repo_id or ""
    files = [path for path, _size in repo_files(repo, "main")]
    checkpoint = read_remote_checkpoint(repo, files, "main")
    require_awq(checkpoint)
    plan = plan_awq(AwqFigures.from_checkpoint(checkpoint), hardware, replace(request, quant=None))
    plan.reasons.append(f"read config.json and the safetensors headers from {repo} by HTTP Range")
    return plan


def _plan_catalog_awq(
    ref: ModelRef, hardware: Hardware, request: PlanRequest, offline: bool
) -> AwqPlan:
    entry = ref.entry
    assert entry is not None and entry.awq is not None
    source, why = entry.awq, "offline"
    if not offline:
        try:
            files = [path for path, _size in repo_files(source.repo, source.revision)]
            checkpoint = read_remote_checkpoint(source.repo, files, source.revision)
            figures = AwqFigures.from_checkpoint(checkpoint)
            plan = plan_awq(figures, hardware, request, model_name=f"{entry.name}:AWQ")
            plan.reasons.append(f"read the AWQ shard headers from {source.repo} by HTTP Range")
            return plan
        except DownloadFailed as exc:
            why = f"hub unreachable ({exc.message})"
    if entry.arch is None:
        raise DownloadFailed(f"{entry.name}:AWQ cannot be planned ({why})")
    figures = AwqFigures.from_catalog(f"{entry.name}:AWQ", entry.arch, source.size_bytes)
    plan = plan_awq(figures, hardware, request)
    plan.reasons.append(f"AWQ planned from models.toml's recorded figures ({why})")
    return plan


def _gguf_or_none(plan_gguf: PlanGguf, ref: ModelRef, request: PlanRequest) -> Plan | None:
    try:
        return plan_gguf(ref, request)
    except LocalchatError:
        return None
