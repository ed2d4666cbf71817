"""``--parallel auto``: how many slots (sequences decoded together) a served model gets.

The single-stream plan comes first (quant, GPU layers, context, as for ``ask``); slots
never change it.  Then the slot count doubles (2, 4, 8) while all of these hold:

- the cache for that many slots, each with the plan's context, fits beside the weights
  on the same devices (``planner.memory`` costs N sequences);
- each stream is still predicted at or above the target speed (``--target-tok-s``);
- the speed model predicts the doubling adds at least ``MIN_AGGREGATE_GAIN`` to the
  aggregate tok/s (on a CPU, where a step is compute-bound sooner, it soon stops paying).

The reason names the count, the memory it costs and the speeds, and why it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from localchat.planner.plan import PlanRequest
from localchat.planner.reasons import gib, tok_s
from localchat.planner.search import Candidate

AUTO_SLOT_COUNTS = (2, 4, 8)
MIN_AGGREGATE_GAIN = 1.15  # a doubling must add 15 % to the predicted aggregate tok/s

Costing = Callable[[PlanRequest], Candidate]  # the chosen quant costed for a request


@dataclass(frozen=True)
class SlotChoice:
    candidate: Candidate  # the chosen configuration with its slots' cache
    n_parallel: int
    reason: str


def choose_slots(single: Candidate, request: PlanRequest, cost: Costing) -> SlotChoice:
    """The most slots worth having for the single-stream plan ``single``."""
    fixed = replace(
        request,
        quant=single.quant,
        n_ctx=single.settings.n_ctx,
        n_gpu_layers=single.n_gpu_layers,
        n_cpu_moe=single.settings.n_cpu_moe,
        parallel_auto=False,
    )
    best, best_n, stop = single, 1, ""
    for n_slots in AUTO_SLOT_COUNTS:
        candidate = cost(replace(fixed, n_parallel=n_slots))
        stop = _why_not(candidate, n_slots, best, best_n, request.target_tok_s)
        if stop:
            break
        best, best_n = candidate, n_slots
    return SlotChoice(best, best_n, _reason(single, best, best_n, stop))


def aggregate_tok_s(candidate: Candidate, n_slots: int) -> float:
    return candidate.speed.decode_tok_s * n_slots


def _why_not(
    candidate: Candidate, n_slots: int, best: Candidate, best_n: int, target_tok_s: float
) -> str:
    """Why ``n_slots`` is not worth it ("" when it is)."""
    if not candidate.fit.fits:
        over = sum(candidate.fit.over_bytes.values())
        return f"{n_slots} would not fit ({gib(over)} over)"
    per_stream = candidate.speed.decode_tok_s
    if per_stream < target_tok_s:
        return (
            f"{n_slots} would slow each stream to {tok_s(per_stream)}, below {tok_s(target_tok_s)}"
        )
    gain = aggregate_tok_s(candidate, n_slots) / aggregate_tok_s(best, best_n)
    if gain < MIN_AGGREGATE_GAIN:
        return (
            f"{n_slots} would add only {(gain - 1) * 100:.0f} % "
            f"({tok_s(aggregate_tok_s(candidate, n_slots))} in all)"
        )
    return ""


def _reason(single: Candidate, best: Candidate, n_slots: int, stop: str) -> str:
    each = single.settings.n_ctx
    one = f"1 stream: {tok_s(single.speed.decode_tok_s)}"
    if n_slots == 1:
        return f"--parallel auto: 1 slot of {each} context ({one}); {stop}"
    kv_more = _kv_bytes(best) - _kv_bytes(single)
    return (
        f"--parallel auto: {n_slots} slots of {each} context each (KV cache +{gib(kv_more)}): "
        f"predicted {n_slots} × {tok_s(best.speed.decode_tok_s)} = "
        f"{tok_s(aggregate_tok_s(best, n_slots))} in all ({one})"
        + (f"; {stop}" if stop else f"; {n_slots} is the most auto chooses")
    )


def _kv_bytes(candidate: Candidate) -> int:
    return sum(device.kv_bytes for device in candidate.estimate.devices)
