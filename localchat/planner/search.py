"""Search quant × context × GPU layers for the plan that fits and runs best.

Policy (README "How localchat decides what fits"):

1. For each quant the repo has: keep every layer on the GPU at the target context
   if it fits; otherwise shrink the context (in steps of 256, not below the floor)
   while that keeps every layer on the GPU; otherwise, at the floor context, put as
   many layers on the GPU as fit and the rest in RAM (a MoE model: whole layers, or
   the experts of the first layers, whichever is predicted faster).
2. Among the quants that fit: the highest-quality one (``planner.quality``: measured
   loss, not file size) predicted at or above the target speed, where a quant whose
   quality is within the data's noise of it goes first if it is faster; else the
   fastest plan that fits.  Running fully on the GPU is a means to speed, not a goal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from localchat.errors import ConfigError
from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware
from localchat.planner.budget import Budgets, FitCheck, check_fit
from localchat.planner.memory import MemoryEstimate, MemorySettings, estimate_memory
from localchat.planner.plan import QUANTIZED_KV_TYPES, PlanRequest
from localchat.planner.quality import QualityLoss, near_tie
from localchat.planner.speed import Calibration, SpeedPrediction, ThreadCounts, predict_speed
from localchat.planner.threads import ThreadChoice, choose_threads

CTX_STEP = 256
# (memory settings, threads) -> speed calibration from `localchat bench`, or None
CalibrationLookup = Callable[[MemorySettings, ThreadChoice], Calibration | None]


@dataclass(frozen=True)
class Candidate:
    """The best configuration found for one quant."""

    quant: str
    info: GgufInfo
    settings: MemorySettings
    estimate: MemoryEstimate
    fit: FitCheck
    speed: SpeedPrediction
    threads: ThreadChoice
    target_ctx: int
    placement_note: str = ""  # MoE: why the expert split or the layer split was chosen
    quality: QualityLoss | None = None  # expected loss against the unquantized model

    @property
    def tokens_per_s(self) -> float:
        return self.speed.decode_tok_s

    @property
    def n_gpu_layers(self) -> int:
        return self.settings.n_gpu_layers

    @property
    def full_offload(self) -> bool:
        return self.settings.n_gpu_layers >= self.info.n_layers + 1 and not self.settings.n_cpu_moe


class _Evaluator:
    def __init__(
        self,
        info: GgufInfo,
        request: PlanRequest,
        hardware: Hardware,
        budgets: Budgets,
        compute_scale: float,
        calibrate: CalibrationLookup | None = None,
    ) -> None:
        self.info, self.request, self.hardware, self.budgets = info, request, hardware, budgets
        self.compute_scale = compute_scale
        self.calibrate = calibrate
        self.n_parallel = max(request.n_parallel, 1)
        self.n_gpus = budgets.n_gpus
        self.flash_attn = decide_flash_attn(request, self.n_gpus)
        self.tensor_split = _tensor_split(budgets) if self.n_gpus > 1 else ()

    def settings(self, n_ctx: int, n_gpu_layers: int, n_cpu_moe: int = 0) -> MemorySettings:
        return MemorySettings(
            n_ctx=n_ctx * self.n_parallel,
            n_gpu_layers=n_gpu_layers if self.n_gpus else 0,
            type_k=self.request.type_k,
            type_v=self.request.type_v,
            flash_attn=self.flash_attn,
            n_batch=self.request.n_batch,
            n_ubatch=self.request.n_ubatch,
            swa_full=self.request.swa_full,
            tensor_split=self.tensor_split,
            n_cpu_moe=n_cpu_moe if self.n_gpus else 0,
            n_seq_max=self.n_parallel,
        )

    def estimate(
        self, n_ctx: int, n_gpu_layers: int, n_cpu_moe: int = 0
    ) -> tuple[MemorySettings, MemoryEstimate]:
        settings = self.settings(n_ctx, n_gpu_layers, n_cpu_moe)
        estimate = estimate_memory(
            self.info,
            settings,
            n_gpus=self.n_gpus,
            gpu_reserve_bytes=self.budgets.gpu_reserve_bytes[: self.n_gpus],
            cpu_arch=self.hardware.cpu.arch or "x86_64",
            cpu_features=_repack_features(self.hardware),
            compute_scale=self.compute_scale,
            n_remote=self.budgets.n_remote,
        )
        return settings, estimate

    def fits(self, n_ctx: int, n_gpu_layers: int, n_cpu_moe: int = 0) -> bool:
        return check_fit(self.estimate(n_ctx, n_gpu_layers, n_cpu_moe)[1], self.budgets).fits

    def gpus_fit(self, n_ctx: int, n_gpu_layers: int, n_cpu_moe: int = 0) -> bool:
        estimate = self.estimate(n_ctx, n_gpu_layers, n_cpu_moe)[1]
        over = check_fit(estimate, self.budgets).over_bytes
        return not any(device != "CPU" for device in over)

    def candidate(
        self, quant: str, n_ctx: int, n_gpu_layers: int, target_ctx: int, n_cpu_moe: int = 0
    ) -> Candidate:
        settings, estimate = self.estimate(n_ctx, n_gpu_layers, n_cpu_moe)
        threads = choose_threads(
            self.hardware.cpu, n_gpu_layers=settings.n_gpu_layers, requested=self.request.n_threads
        )
        speed = predict_speed(
            self.info,
            settings,
            estimate,
            self.hardware,
            ThreadCounts(threads.n_threads, threads.n_threads_batch),
            calibration=self.calibrate(settings, threads) if self.calibrate else None,
            n_prompt=self.request.n_prompt,
            n_parallel=self.n_parallel,
        )
        return Candidate(
            quant=quant,
            info=self.info,
            settings=settings,
            estimate=estimate,
            fit=check_fit(estimate, self.budgets),
            speed=speed,
            threads=threads,
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


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
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


def _best_context(
    ev: _Evaluator, target: int, floor: int, n_gpu_layers: int, n_cpu_moe: int = 0
) -> int | None:
    if ev.fits(target, n_gpu_layers, n_cpu_moe):
        return target
    steps_lo, steps_hi = -(-floor // CTX_STEP), (target - 1) // CTX_STEP
    steps = _largest(steps_lo, steps_hi, lambda k: ev.fits(k * CTX_STEP, n_gpu_layers, n_cpu_moe))
    return steps * CTX_STEP if steps is not None else None


def search_quant(
    quant: str,
    info: GgufInfo,
    request: PlanRequest,
    hardware: Hardware,
    budgets: Budgets,
    *,
    compute_scale: float = 1.0,
    calibrate: CalibrationLookup | None = None,
) -> Candidate:
    """The best configuration of one quant on this hardware (``fit.fits`` False if none).

    A configuration the user named (``n_gpu_layers``, ``n_cpu_moe``) is costed as given.
    A MoE model that does not fit the GPU(s) is planned both ways, whole layers in RAM
    (layer split) or the experts of the first layers in RAM (expert split), and the
    faster plan that fits wins.
    """
    ev = _Evaluator(info, request, hardware, budgets, compute_scale, calibrate)
    target, floor = context_bounds(info, request)
    all_layers = info.n_layers + 1
    n_cpu_moe = request.n_cpu_moe or 0
    if request.n_gpu_layers is not None or request.n_cpu_moe is not None or ev.n_gpus == 0:
        wanted = all_layers if request.n_gpu_layers is None else request.n_gpu_layers
        n_gpu_layers = min(wanted, all_layers) if ev.n_gpus else 0
        n_ctx = _best_context(ev, target, floor, n_gpu_layers, n_cpu_moe)
        return ev.candidate(quant, n_ctx or floor, n_gpu_layers, target, n_cpu_moe)
    n_ctx = _best_context(ev, target, floor, all_layers)
    if n_ctx is not None:
        return ev.candidate(quant, n_ctx, all_layers, target)
    most = _largest(0, all_layers - 1, lambda ngl: ev.gpus_fit(floor, ngl))
    layer_split = ev.candidate(quant, floor, most or 0, target)
    if not info.is_moe:
        return layer_split
    return _expert_split_or(layer_split, ev, quant, target, floor)


def _expert_split_or(
    layer_split: Candidate, ev: _Evaluator, quant: str, target: int, floor: int
) -> Candidate:
    """The MoE expert split when it fits and is predicted faster than ``layer_split``."""
    info, all_layers = ev.info, ev.info.n_layers + 1
    for n_ctx in (target, floor):
        fewest = _smallest(1, info.n_layers, partial(_expert_split_fits, ev, n_ctx))
        if fewest is not None:
            break
    else:
        return replace(layer_split, placement_note="MoE: no expert split fits either")
    expert_split = ev.candidate(quant, n_ctx, all_layers, target, fewest)
    experts = f"experts of layers 0-{fewest - 1}" if fewest > 1 else "experts of layer 0"
    ways = (
        f"expert split ({experts} in RAM; attention, norms, router and KV on GPU): "
        f"predicted {expert_split.tokens_per_s:.1f} tok/s; layer split "
        f"({layer_split.n_gpu_layers}/{all_layers} layers on GPU): "
        f"predicted {layer_split.tokens_per_s:.1f} tok/s"
    )
    if not layer_split.fit.fits or expert_split.tokens_per_s > layer_split.tokens_per_s:
        return replace(expert_split, placement_note=f"MoE: chose the {ways}")
    return replace(layer_split, placement_note=f"MoE: chose the layer split over the {ways}")


def _expert_split_fits(ev: _Evaluator, n_ctx: int, n_cpu_moe: int) -> bool:
    return ev.fits(n_ctx, ev.info.n_layers + 1, n_cpu_moe)


def _smallest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """Smallest x in [lo, hi] with ok(x), assuming ok is monotone (false, then true)."""
    if lo > hi or not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, how it was chosen, and the others the reason names."""

    chosen: Candidate
    how: str  # quality | tie | fastest | requested | none
    tied: Candidate | None = None  # how == "tie": the better-quality one it matched
    faster: Candidate | None = None  # the fastest plan that fits, when not the chosen
    better: Candidate | None = None  # the next better-quality plan, which misses the target


def choose(candidates: list[Candidate], request: PlanRequest) -> Choice:
    """The highest-quality quant predicted at the target speed (near ties: the faster),
    else the fastest plan that fits; the quant asked for; or, if nothing fits, the
    smallest."""
    if request.quant is not None:
        chosen = candidates[0]
        return Choice(chosen, "requested" if chosen.fit.fits else "none")
    fitting = [c for c in candidates if c.fit.fits]
    if not fitting:
        return Choice(min(candidates, key=lambda c: c.info.weights_bytes), "none")
    fastest = max(fitting, key=lambda c: c.tokens_per_s)
    target = request.target_tok_s
    quick = [c for c in fitting if c.tokens_per_s >= target]
    if not quick:
        return Choice(fastest, "fastest")
    best = min(quick, key=_loss)
    ties = [c for c in quick if _tie(best, c)]
    chosen = max(ties, key=lambda c: c.tokens_per_s)
    slow_better = [c for c in fitting if c.tokens_per_s < target and _loss(c) < _loss(chosen)]
    return Choice(
        chosen,
        "quality" if chosen is best else "tie",
        tied=None if chosen is best else best,
        faster=None if fastest is chosen else fastest,
        better=max(slow_better, key=_loss) if slow_better else None,
    )


def _loss(candidate: Candidate) -> float:
    """KL divergence, for ordering; a quant with no figure sorts after every other."""
    return candidate.quality.kld if candidate.quality is not None else float("inf")


def _tie(a: Candidate, b: Candidate) -> bool:
    if a.quality is None or b.quality is None:
        return a is b
    return near_tie(a.quality, b.quality)
