"""Search quant × context × GPU layers for the plan that fits and runs best.

Policy (README "How localchat picks a quant"):

1. For each quant the repo has: keep every layer on the GPU at the target context
   if it fits; otherwise shrink the context (in steps of 256, not below the floor)
   while that keeps every layer on the GPU; otherwise, at the floor context, put as
   many layers on the GPU as fit and the rest in RAM.
2. Among the quants that fit: the best-quality one that runs fully on the GPU at
   the target speed; else the best-quality one predicted at the target speed;
   else the fastest plan that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from localchat.errors import ConfigError
from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware
from localchat.planner.budget import Budgets, FitCheck, check_fit
from localchat.planner.memory import MemoryEstimate, Settings, estimate_memory
from localchat.planner.plan import QUANTIZED_KV_TYPES, PlanRequest
from localchat.planner.speed import predict_tokens_per_s

CTX_STEP = 256


@dataclass(frozen=True)
class Candidate:
    """The best configuration found for one quant."""

    quant: str
    info: GgufInfo
    settings: Settings
    estimate: MemoryEstimate
    fit: FitCheck
    tokens_per_s: float
    target_ctx: int

    @property
    def n_gpu_layers(self) -> int:
        return self.settings.n_gpu_layers

    @property
    def full_offload(self) -> bool:
        return self.settings.n_gpu_layers >= self.info.n_layers + 1


class _Evaluator:
    def __init__(
        self,
        info: GgufInfo,
        request: PlanRequest,
        hardware: Hardware,
        budgets: Budgets,
        compute_scale: float,
    ) -> None:
        self.info, self.request, self.hardware, self.budgets = info, request, hardware, budgets
        self.compute_scale = compute_scale
        self.n_gpus = budgets.n_gpus
        self.flash_attn = decide_flash_attn(request, self.n_gpus)
        self.tensor_split = _tensor_split(budgets) if self.n_gpus > 1 else ()

    def settings(self, n_ctx: int, n_gpu_layers: int) -> Settings:
        return Settings(
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers if self.n_gpus else 0,
            type_k=self.request.type_k,
            type_v=self.request.type_v,
            flash_attn=self.flash_attn,
            n_batch=self.request.n_batch,
            n_ubatch=self.request.n_ubatch,
            swa_full=self.request.swa_full,
            tensor_split=self.tensor_split,
        )

    def estimate(self, n_ctx: int, n_gpu_layers: int) -> tuple[Settings, MemoryEstimate]:
        settings = self.settings(n_ctx, n_gpu_layers)
        estimate = estimate_memory(
            self.info,
            settings,
            n_gpus=self.n_gpus,
            gpu_reserve_bytes=self.budgets.gpu_reserve_bytes[: self.n_gpus],
            cpu_arch=self.hardware.cpu.arch or "x86_64",
            cpu_features=_repack_features(self.hardware),
            compute_scale=self.compute_scale,
        )
        return settings, estimate

    def fits(self, n_ctx: int, n_gpu_layers: int) -> bool:
        return check_fit(self.estimate(n_ctx, n_gpu_layers)[1], self.budgets).fits

    def gpus_fit(self, n_ctx: int, n_gpu_layers: int) -> bool:
        over = check_fit(self.estimate(n_ctx, n_gpu_layers)[1], self.budgets).over_bytes
        return not any(device.startswith("GPU") for device in over)

    def candidate(self, quant: str, n_ctx: int, n_gpu_layers: int, target_ctx: int) -> Candidate:
        settings, estimate = self.estimate(n_ctx, n_gpu_layers)
        return Candidate(
            quant=quant,
            info=self.info,
            settings=settings,
            estimate=estimate,
            fit=check_fit(estimate, self.budgets),
            tokens_per_s=predict_tokens_per_s(self.info, estimate, self.hardware),
            target_ctx=target_ctx,
        )


def _repack_features(hardware: Hardware) -> tuple[str, ...]:
    """The CPU's ISA flags, or none when the installed build has no CPU repack."""
    build = hardware.build
    if build is not None and build.system_info and "REPACK = 1" not in build.system_info:
        return ()
    return hardware.cpu.features


def decide_flash_attn(request: PlanRequest, n_gpus: int) -> bool:
    quantized_v = request.type_v.lower() in QUANTIZED_KV_TYPES
    if request.flash_attn is False and quantized_v:
        raise ConfigError(
            f"a {request.type_v} V cache needs flash attention",
            hint="drop --no-flash-attn or use an f16 V cache",
        )
    if request.flash_attn is not None:
        return request.flash_attn
    return quantized_v or n_gpus > 0


def _tensor_split(budgets: Budgets) -> tuple[float, ...]:
    usable = [budgets.gpu_usable_bytes(i) for i in range(budgets.n_gpus)]
    total = sum(usable) or 1
    return tuple(round(u / total, 4) for u in usable)


def context_bounds(info: GgufInfo, request: PlanRequest) -> tuple[int, int]:
    """(target, floor) context; a context the user fixed is both."""
    if request.n_ctx:
        return request.n_ctx, request.n_ctx
    target = min(info.n_ctx_train or request.default_ctx, request.default_ctx)
    return target, min(request.min_ctx, target)


def _largest(lo: int, hi: int, ok) -> int | None:
    """Largest x in [lo, hi] with ok(x), assuming ok is monotone (true, then false)."""
    if lo > hi or not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _best_context(ev: _Evaluator, target: int, floor: int, n_gpu_layers: int) -> int | None:
    if ev.fits(target, n_gpu_layers):
        return target
    steps_lo, steps_hi = -(-floor // CTX_STEP), (target - 1) // CTX_STEP
    steps = _largest(steps_lo, steps_hi, lambda k: ev.fits(k * CTX_STEP, n_gpu_layers))
    return steps * CTX_STEP if steps is not None else None


def search_quant(
    quant: str,
    info: GgufInfo,
    request: PlanRequest,
    hardware: Hardware,
    budgets: Budgets,
    *,
    compute_scale: float = 1.0,
) -> Candidate:
    """The best configuration of one quant on this hardware (``fit.fits`` False if none)."""
    ev = _Evaluator(info, request, hardware, budgets, compute_scale)
    target, floor = context_bounds(info, request)
    all_layers = info.n_layers + 1
    if request.n_gpu_layers is not None or ev.n_gpus == 0:
        n_gpu_layers = min(request.n_gpu_layers or 0, all_layers) if ev.n_gpus else 0
        n_ctx = _best_context(ev, target, floor, n_gpu_layers)
        return ev.candidate(quant, n_ctx or floor, n_gpu_layers, target)
    n_ctx = _best_context(ev, target, floor, all_layers)
    if n_ctx is not None:
        return ev.candidate(quant, n_ctx, all_layers, target)
    most = _largest(0, all_layers - 1, lambda ngl: ev.gpus_fit(floor, ngl))
    return ev.candidate(quant, floor, most or 0, target)


def quality_order(quants: Mapping[str, object]) -> list[str]:
    from localchat.store.quants import quality_rank

    return sorted(quants, key=lambda q: (quality_rank(q), q))


def choose(candidates: list[Candidate], request: PlanRequest) -> tuple[Candidate, str]:
    """(chosen candidate, how: full | target | fastest | requested | none)."""
    if request.quant is not None:
        chosen = candidates[0]
        return chosen, ("requested" if chosen.fit.fits else "none")
    fitting = [c for c in candidates if c.fit.fits]
    if not fitting:
        return min(candidates, key=lambda c: c.info.weights_bytes), "none"
    target = request.target_tok_s
    for how, wanted in (
        ("full", [c for c in fitting if c.full_offload and c.tokens_per_s >= target]),
        ("target", [c for c in fitting if c.tokens_per_s >= target]),
    ):
        if wanted:
            return wanted[0], how
    return max(fitting, key=lambda c: c.tokens_per_s), "fastest"
