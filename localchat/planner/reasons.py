"""Plain-words explanations of plans ("Q4_K_M: 42.5 GB does not fit 24 GB VRAM; ...")."""

from __future__ import annotations

from collections.abc import Sequence

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
