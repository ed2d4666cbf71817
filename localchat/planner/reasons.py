"""Plain-words explanations of plans ("Q4_K_M: 42.5 GB does not fit 24 GB VRAM; ...")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from localchat.hardware.types import Hardware
from localchat.planner.budget import Budgets

if TYPE_CHECKING:
    from localchat.planner.plan import PlanRequest
    from localchat.planner.search import Candidate, Choice


def gb(n_bytes: float) -> str:
    """Decimal GB with one decimal, as the hub and GPU vendors print sizes."""
    return f"{n_bytes / 1e9:.1f} GB"


def gib(n_bytes: float) -> str:
    """Binary GiB, as GPU memory is sold ("24 GB" cards hold 24 GiB)."""
    return (
        f"{n_bytes / (1 << 30):.0f} GiB"
        if n_bytes >= 10 << 30
        else f"{n_bytes / (1 << 30):.1f} GiB"
    )


def vram_words(budgets: Budgets) -> str:
    sizes = budgets.gpu_free_bytes
    if budgets.n_remote:
        remote = " + ".join(gib(s) for s in sizes[: budgets.n_remote]) + " on RPC workers"
        local = sizes[budgets.n_remote :]
        return remote + (" + " + " + ".join(gib(s) for s in local) + " VRAM" if local else "")
    if not sizes:
        return "no GPU"
    if len(set(sizes)) == 1 and len(sizes) > 1:
        return f"{len(sizes)}×{gib(sizes[0])} VRAM"
    return " + ".join(gib(s) for s in sizes) + " VRAM"


def tok_s(value: float) -> str:
    return f"{value:.1f} tok/s" if value < 10 else f"{value:.0f} tok/s"


def candidate_line(
    quant: str,
    weights_bytes: int,
    *,
    n_gpu_layers: int,
    n_layers: int,
    n_ctx: int,
    fits: bool,
    tokens_per_s: float,
    budgets: Budgets,
    over_bytes: dict[str, int],
    n_cpu_moe: int = 0,
    quality: str = "",
) -> str:
    """One quant's best plan in words; ``quality`` (its expected loss) is appended."""
    if not fits:
        over = ", ".join(f"{device} short by {gb(b)}" for device, b in sorted(over_bytes.items()))
        return f"{quant}: {gb(weights_bytes)} does not fit even at {n_ctx} context ({over})"
    placed = _placement_words(
        quant, gb(weights_bytes), n_gpu_layers, n_layers, n_ctx, budgets, n_cpu_moe
    )
    return f"{placed}; predicted {tok_s(tokens_per_s)}" + (f"; {quality}" if quality else "")


def _placement_words(
    quant: str,
    size: str,
    n_gpu_layers: int,
    n_layers: int,
    n_ctx: int,
    budgets: Budgets,
    n_cpu_moe: int,
) -> str:
    all_layers = n_layers + 1
    if budgets.n_gpus == 0:
        return f"{quant}: {size} in RAM (CPU only), {n_ctx} context"
    if n_gpu_layers >= all_layers and n_cpu_moe:
        return (
            f"{quant}: {size} does not fit {vram_words(budgets)} whole; all {all_layers} layers "
            f"on GPU but the experts of {n_cpu_moe} in RAM, {n_ctx} context"
        )
    if n_gpu_layers >= all_layers:
        return (
            f"{quant}: {size} fits {vram_words(budgets)} with {n_ctx} context, all "
            f"{all_layers} layers on GPU"
        )
    placement = (
        "nothing on GPU" if n_gpu_layers == 0 else f"{n_gpu_layers} of {all_layers} layers on GPU"
    )
    return (
        f"{quant}: {size} does not fit {vram_words(budgets)}; {placement}, the rest in RAM, "
        f"{n_ctx} context"
    )


def quality_words(candidate: Candidate, *, detail: bool = False) -> str:
    """The candidate's expected loss ("+7.5 % perplexity"), or that none is known."""
    if candidate.quality is None:
        return "quality loss unknown"
    return candidate.quality.words(detail=detail)


def _speed_and_quality(candidate: Candidate) -> str:
    return f"{tok_s(candidate.tokens_per_s)}, {quality_words(candidate)}"


def choice_line(choice: Choice, target_tok_s: float) -> str:
    """Why this quant: the rule that picked it, with its speed and quality and the
    runner-up's, e.g. "chose Q4_0: the best quality predicted at ≥ 10 tok/s (29 tok/s,
    +7.5 % perplexity); Q2_K is faster (126 tok/s) but loses more (+56.5 % perplexity)"."""
    chosen, target = choice.chosen, f"{target_tok_s:g} tok/s"
    head = {
        "quality": f"the best quality predicted at ≥ {target}",
        "fastest": f"no quant reaches {target}, so the fastest plan that fits",
        "requested": "the quant asked for",
        "none": "nothing fits this machine; showing the smallest option",
    }
    if choice.how == "tie" and choice.tied is not None:
        tied = choice.tied
        text = (
            f"chose {chosen.quant}: as good as {tied.quant} within the data's noise "
            f"({quality_words(chosen)} vs {quality_words(tied)}) and faster "
            f"({tok_s(chosen.tokens_per_s)} vs {tok_s(tied.tokens_per_s)})"
        )
    else:
        text = f"chose {chosen.quant}: {head[choice.how]}"
        if choice.how != "none":
            text += f" ({_speed_and_quality(chosen)})"
    if choice.faster is not None and choice.how in ("quality", "tie"):
        faster = choice.faster
        text += (
            f"; {faster.quant} is faster ({tok_s(faster.tokens_per_s)}) but loses more "
            f"({quality_words(faster)})"
        )
    if choice.better is not None:
        better = choice.better
        text += (
            f"; the next better, {better.quant} ({quality_words(better)}), is predicted at "
            f"{tok_s(better.tokens_per_s)}"
        )
    return text


def context_line(target_ctx: int, n_ctx: int, full_offload: bool) -> str | None:
    if n_ctx >= target_ctx:
        return None
    why = "to keep every layer on the GPU" if full_offload else "to fit memory"
    return f"context shrunk from {target_ctx} to {n_ctx} {why}"


def join_notes(notes: Sequence[str]) -> list[str]:
    return [note for note in notes if note]


def ram_note(cpu_bytes: int, hardware: Hardware, budgets: Budgets) -> str:
    """Plans budget RAM as total minus a reserve; say so when less is free right now."""
    free = hardware.ram_available_bytes
    if cpu_bytes <= free:
        return ""
    return (
        f"only {gib(free)} of RAM is free right now, the plan needs {gib(cpu_bytes)} of its "
        f"{gib(budgets.ram_budget_bytes)} budget (total RAM minus a reserve): close other "
        "programs, or expect swapping"
    )


def speed_lines(chosen: Candidate, request: PlanRequest, n_gpus: int) -> list[str]:
    """Threads, predicted prefill/decode speeds with their source, MoE placement, ignored --ngl."""
    speed, threads = chosen.speed, chosen.threads
    lines = [
        f"threads: {threads.n_threads} for decode, {threads.n_threads_batch} for prompts "
        f"({threads.source})",
        f"speed ({speed.source}): decode {tok_s(speed.decode_tok_s)} with the cache "
        f"{speed.kv_tokens} tokens full, prefill {tok_s(speed.prefill_tok_s)}; time to first "
        f"token for a {speed.n_prompt}-token prompt {speed.ttft_s(speed.n_prompt):.2f} s",
    ]
    if request.n_parallel > 1:
        each = chosen.settings.n_ctx // request.n_parallel
        lines.append(
            f"{request.n_parallel} parallel sequences of {each} context each: "
            f"{tok_s(speed.decode_tok_s * request.n_parallel)} in all"
        )
    if chosen.placement_note:
        lines.append(chosen.placement_note)
    if request.n_gpu_layers and not n_gpus:
        lines.append(f"no GPU to offload to: --ngl {request.n_gpu_layers} planned as 0")
    return lines


def beyond_training_line(n_ctx: int, n_ctx_train: int) -> str:
    """The warning for a context longer than the model was trained on ("" when it is not)."""
    if not 0 < n_ctx_train < n_ctx:
        return ""
    return (
        f"a context of {n_ctx} tokens is beyond what this model was trained on "
        f"({n_ctx_train}); text past {n_ctx_train} tokens may degrade"
    )
