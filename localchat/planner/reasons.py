"""Plain-words explanations of plans ("Q4_K_M: 42.5 GB does not fit 24 GB VRAM; ...")."""

from __future__ import annotations

from collections.abc import Sequence

from localchat.hardware.types import Hardware
from localchat.planner.budget import Budgets


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
) -> str:
    size = gb(weights_bytes)
    all_layers = n_layers + 1
    if not fits:
        over = ", ".join(f"{device} short by {gb(b)}" for device, b in sorted(over_bytes.items()))
        return f"{quant}: {size} does not fit even at {n_ctx} context ({over})"
    if budgets.n_gpus == 0:
        return (
            f"{quant}: {size} in RAM (CPU only), {n_ctx} context; predicted {tok_s(tokens_per_s)}"
        )
    if n_gpu_layers >= all_layers and n_cpu_moe:
        return (
            f"{quant}: {size} does not fit {vram_words(budgets)} whole; all {all_layers} layers "
            f"on GPU but the experts of {n_cpu_moe} in RAM, {n_ctx} context; "
            f"predicted {tok_s(tokens_per_s)}"
        )
    if n_gpu_layers >= all_layers:
        return (
            f"{quant}: {size} fits {vram_words(budgets)} with {n_ctx} context, all "
            f"{all_layers} layers on GPU; predicted {tok_s(tokens_per_s)}"
        )
    placement = (
        "nothing on GPU" if n_gpu_layers == 0 else f"{n_gpu_layers} of {all_layers} layers on GPU"
    )
    return (
        f"{quant}: {size} does not fit {vram_words(budgets)}; {placement}, the rest in RAM, "
        f"{n_ctx} context; predicted {tok_s(tokens_per_s)}"
    )


def choice_line(quant: str, how: str, target_tok_s: float) -> str:
    words = {
        "full": f"the best quant that runs all on GPU at ≥ {target_tok_s:g} tok/s",
        "target": f"the best quant predicted at ≥ {target_tok_s:g} tok/s",
        "fastest": f"no quant reaches {target_tok_s:g} tok/s, so the fastest plan that fits",
        "requested": "the quant asked for",
        "none": "nothing fits this machine; showing the smallest option",
    }
    return f"chose {quant}: {words[how]}"


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


def speed_lines(chosen, request, n_gpus: int) -> list[str]:  # chosen: search.Candidate
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
