"""The planner's entry points: ``plan_model``, ``plan_for_file``, ``choose_quant``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

from localchat.catalog.schema import ArchNumbers
from localchat.errors import ModelNotFound
from localchat.gguf import read_gguf
from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware
from localchat.planner import reasons as words
from localchat.planner.awq_ref import plan_hub_fallback, plan_with_awq
from localchat.planner.budget import Budgets, budgets_for
from localchat.planner.calibration import compute_scale, model_identity
from localchat.planner.embedding import embedding_line, embedding_request
from localchat.planner.plan import Plan, PlanRequest
from localchat.planner.quality import caveat_line, losses_for, quality_order, source_line
from localchat.planner.search import Candidate, Choice, choose, decide_flash_attn, search_quant
from localchat.planner.slots import Costing, SlotChoice, choose_slots
from localchat.planner.sources import sources_for_ref
from localchat.planner.speed_calibration import lookup_for
from localchat.planner.synth import info_from_arch
from localchat.planner.workers import attach_remote
from localchat.reference import ModelRef


def plan_model(
    infos: Mapping[str, GgufInfo],
    hardware: Hardware,
    request: PlanRequest | None = None,
    *,
    model_name: str = "",
    compute_scales: Mapping[str, float] | None = None,
) -> Plan:
    """Plan one model given the ``GgufInfo`` of each quant the repo offers.

    ``request.quant`` restricts the search to that quant (``ModelNotFound`` if absent).
    ``compute_scales`` (quant -> factor) are calibration corrections from real loads.
    """
    request = request or PlanRequest()
    if not infos:
        raise ModelNotFound(f"{model_name or 'model'}: no GGUF quant to plan")
    asked_ctx = request.n_ctx
    pooling = next(iter(infos.values())).pooling
    n_ctx_train = min(info.n_ctx_train for info in infos.values())
    if pooling is not None:
        request = embedding_request(request, n_ctx_train)
    quants = _wanted_quants(infos, request.quant, model_name)
    budgets = budgets_for(hardware)
    scales = compute_scales or {}
    losses = losses_for(infos)

    def cost(quant: str, costed: PlanRequest) -> Candidate:
        candidate = search_quant(
            quant,
            infos[quant],
            costed,
            hardware,
            budgets,
            compute_scale=scales.get(quant, 1.0),
            calibrate=lookup_for(hardware, infos[quant]) if costed.calibrate_speed else None,
        )
        return replace(candidate, quality=losses[quant])

    per_stream = replace(request, n_parallel=1) if request.parallel_auto else request
    candidates = [cost(q, per_stream) for q in quants]
    choice = choose(candidates, per_stream)
    slots = _slots(choice.chosen, request, partial(cost, choice.chosen.quant))
    chosen = slots.candidate
    plan = _plan_from(chosen, budgets, model_name or chosen.info.model_name)
    plan.n_parallel, plan.parallel_reason = slots.n_parallel, slots.reason
    plan.chosen_by = choice.how
    served = replace(request, n_parallel=slots.n_parallel)
    plan.reasons = _reasons(candidates, choice, served, budgets, hardware, chosen)
    plan.reasons += [slots.reason] if slots.reason else []
    attach_remote(plan, chosen.info, chosen.estimate, hardware, budgets)
    if plan.n_cpu_moe and plan.device_layers.get("CPU"):
        experts = "layer 0" if plan.n_cpu_moe == 1 else f"layers 0-{plan.n_cpu_moe - 1}"
        plan.device_layers["CPU"] += f", experts of {experts}"
    plan.alternatives = [_alternative(c) for c in candidates if c is not choice.chosen]
    if pooling is not None:
        plan.pooling = pooling
        plan.reasons.append(embedding_line(pooling, plan.n_ctx, n_ctx_train, asked_ctx))
    return plan


def _slots(single: Candidate, request: PlanRequest, cost: Costing) -> SlotChoice:
    """The slots asked for, or (``--parallel auto``) chosen for the single-stream plan."""
    if request.parallel_auto and single.fit.fits:
        return choose_slots(single, request, cost)
    if request.parallel_auto:
        return SlotChoice(single, 1, "--parallel auto: 1 slot (the model does not fit)")
    return SlotChoice(single, max(request.n_parallel, 1), "")


def plan_for_file(
    path: Path,
    hardware: Hardware,
    n_ctx: int | None = None,
    *,
    request: PlanRequest | None = None,
    calibrate: bool = True,
) -> Plan:
    """Plan a local GGUF (a split model: pass the first part).  Used by ``ask``."""
    path = Path(path)
    info = read_gguf(path)
    request = replace(request or PlanRequest(), quant=None)
    if n_ctx is not None:
        request = replace(request, n_ctx=n_ctx)
    quant = info.quant or "file"
    scales = {quant: _calibrated_scale(path, request, hardware)} if calibrate else {}
    return plan_model({quant: info}, hardware, request, model_name=path.name, compute_scales=scales)


def choose_quant(
    quant_sizes: Mapping[str, int],
    arch: ArchNumbers | None,
    hardware: Hardware,
    *,
    family: str = "",
    request: PlanRequest | None = None,
    pooling: str | None = None,
) -> str:
    """The quant to download when the user named none (the README's policy).

    ``quant_sizes``: quant -> total bytes of its files.  With ``arch`` (catalog
    figures; ``pooling`` for an embedding model) the full planner runs on synthesized
    headers; without, the best quant
    whose file fits the GPU(s), else RAM, with a margin for KV and compute.
    """
    if not quant_sizes:
        raise ModelNotFound("no quants to choose from")
    request = replace(request or PlanRequest(), quant=None)
    if arch is not None:
        infos = {
            q: info_from_arch(arch, quant=q, file_bytes=size, family=family, pooling=pooling)
            for q, size in quant_sizes.items()
        }
        return plan_model(infos, hardware, request).quant or next(iter(quant_sizes))
    return _choose_by_size(quant_sizes, budgets_for(hardware))


def _choose_by_size(quant_sizes: Mapping[str, int], budgets: Budgets) -> str:
    margin = 1.2  # KV cache and compute buffers on top of the file
    ordered = quality_order(quant_sizes)
    vram = sum(budgets.gpu_usable_bytes(i) for i in range(budgets.n_gpus))
    for room in (vram, budgets.ram_budget_bytes + vram):
        for quant in ordered:
            if quant_sizes[quant] * margin <= room:
                return quant
    return min(quant_sizes, key=lambda q: quant_sizes[q])


def _wanted_quants(infos: Mapping[str, GgufInfo], quant: str | None, model_name: str) -> list[str]:
    if quant is None:
        return quality_order(infos)
    match = [q for q in infos if q.upper() == quant.upper()]
    if not match:
        have = ", ".join(quality_order(infos))
        raise ModelNotFound(f"{model_name or 'model'} has no quant {quant}", hint=f"it has {have}")
    return match


def _calibrated_scale(path: Path, request: PlanRequest, hardware: Hardware) -> float:
    n_gpus = budgets_for(hardware).n_gpus
    return compute_scale(
        model_identity(path),
        flash_attn=decide_flash_attn(request, n_gpus),
        n_ubatch=request.n_ubatch,
    )


def _plan_from(chosen: Candidate, budgets: Budgets, model_name: str) -> Plan:
    settings, info = chosen.settings, chosen.info
    budget_by_device = {
        budgets.device_name(i): budgets.gpu_free_bytes[i] for i in range(budgets.n_gpus)
    }
    budget_by_device["CPU"] = budgets.ram_budget_bytes
    return Plan(
        model=model_name,
        quant=chosen.quant,
        files=info.files,
        n_layers=info.n_layers,
        n_gpu_layers=settings.n_gpu_layers,
        n_ctx=settings.n_ctx,
        type_k=settings.type_k,
        type_v=settings.type_v,
        flash_attn=settings.flash_attn,
        n_batch=min(settings.n_batch, settings.n_ctx),
        n_ubatch=settings.ubatch,
        devices=chosen.estimate.devices,
        budgets_bytes=budget_by_device,
        predicted_tok_s=chosen.tokens_per_s,
        fits=chosen.fit.fits,
        source=info.source,
        swa_full=settings.swa_full,
        tensor_split=settings.tensor_split or None,
        n_threads=chosen.threads.n_threads,
        n_threads_batch=chosen.threads.n_threads_batch,
        threads_source=chosen.threads.source,
        n_cpu_moe=settings.n_cpu_moe,
        speed=chosen.speed,
        quality=chosen.quality,
        weights_bytes=info.weights_bytes,
    )


def _candidate_line(c: Candidate, budgets: Budgets) -> str:
    return words.candidate_line(
        c.quant,
        c.info.weights_bytes,
        n_gpu_layers=c.n_gpu_layers,
        n_layers=c.info.n_layers,
        n_ctx=c.settings.n_ctx,
        fits=c.fit.fits,
        tokens_per_s=c.tokens_per_s,
        budgets=budgets,
        over_bytes=c.fit.over_bytes,
        n_cpu_moe=c.settings.n_cpu_moe,
        quality=words.quality_words(c, detail=True),
    )


def _reasons(
    candidates: list[Candidate],
    choice: Choice,
    request: PlanRequest,
    budgets: Budgets,
    hardware: Hardware,
    chosen: Candidate,
) -> list[str]:
    """Every candidate and the choice among them (one stream each), then what the chosen
    configuration (``chosen``: with its slots) does."""
    lines = [_candidate_line(c, budgets) for c in candidates]
    lines.append(words.choice_line(choice, request.target_tok_s))
    lines += [source_line(), caveat_line(chosen.info)]
    context = words.context_line(chosen.target_ctx, chosen.settings.n_ctx, chosen.full_offload)
    if context and chosen.fit.fits:
        lines.append(context)
    if hardware.gpus and not budgets.gpu_offload_supported:
        lines.append("the installed llama-cpp-python cannot offload to a GPU: planned for CPU")
    lines.extend(words.speed_lines(chosen, request, budgets.n_gpus))
    if chosen.info.source == "catalog figures":
        lines.append("planned from models.toml's recorded figures (headers not read)")
    lines.extend(hardware.notes)
    if request.n_ctx:
        beyond = words.beyond_training_line(request.n_ctx, chosen.info.n_ctx_train)
        lines += [beyond] if beyond else []
    ram_note = words.ram_note(chosen.estimate.cpu.resident_bytes, hardware, budgets)
    if ram_note:
        lines.append(ram_note)
    return lines


def _alternative(c: Candidate) -> dict[str, object]:
    return {
        "quant": c.quant,
        "fits": c.fit.fits,
        "n_gpu_layers": c.n_gpu_layers,
        "n_cpu_moe": c.settings.n_cpu_moe,
        "n_ctx": c.settings.n_ctx,
        "predicted_tok_s": round(c.tokens_per_s, 2),
        "weights": c.info.weights_bytes,
        "quality": c.quality.to_json() if c.quality is not None else None,
    }


def plan_reference(
    ref: ModelRef,
    hardware: Hardware,
    request: PlanRequest | None = None,
    *,
    offline: bool = False,
) -> Plan:
    """Plan a MODEL as ``ask`` and ``plan`` accept it (path, catalog name, hub repo).

    Local files: their header.  Hub models: remote headers by HTTP Range (nothing is
    downloaded), or models.toml's recorded figures when offline; the reasons say which.
    """
    request = request or PlanRequest()
    awq_plan = plan_with_awq(
        ref, hardware, request, lambda r, q: _plan_gguf_reference(r, hardware, q, offline),
        offline=offline,
    )  # fmt: skip
    if awq_plan is not None:
        return awq_plan
    try:
        return _plan_gguf_reference(ref, hardware, request, offline)
    except ModelNotFound:
        fallback = plan_hub_fallback(ref, hardware, request, offline=offline)
        if fallback is None:
            raise
        return fallback


def _plan_gguf_reference(
    ref: ModelRef, hardware: Hardware, request: PlanRequest, offline: bool
) -> Plan:
    if ref.kind == "path" and ref.path is not None and ref.path.is_file():
        plan = plan_for_file(ref.path, hardware, request=request)  # with calibration
        plan.reasons.append("read the file's GGUF header")
        return plan
    if ref.quant and not request.quant:
        request = replace(request, quant=ref.quant)

    def pick(infos: Mapping[str, GgufInfo]) -> str:
        return plan_model(infos, hardware, request).quant or next(iter(infos))

    sources = sources_for_ref(ref, offline=offline, pick=pick)
    plan = plan_model(sources.infos, hardware, request, model_name=sources.name)
    plan.reasons.extend(sources.notes)
    return plan
