"""Token sampling on a logits vector, in llama.cpp's order: penalty, top-k, top-p, min-p, temp.

Works on torch tensors; ``torch`` is passed in so this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from localchat.types import SamplingParams

PENALTY_LAST_N = 64  # llama.cpp's default repeat_last_n


def pick_token(
    torch: Any, logits: Any, sampling: SamplingParams, recent: list[int], generator: Any
) -> int:
    """The next token id: argmax at temperature <= 0, else a draw from the filtered softmax."""
    logits = logits.float()
    if sampling.repeat_penalty != 1.0 and recent:
        logits = _penalize(torch, logits, recent[-PENALTY_LAST_N:], sampling.repeat_penalty)
    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    if 0 < sampling.top_k < logits.numel():
        kth = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if 0 < sampling.top_p < 1:
        probs = _top_p(torch, probs, sampling.top_p)
    if sampling.min_p > 0:
        probs = probs.masked_fill(probs < probs.max() * sampling.min_p, 0.0)
    logits = torch.log(probs) / sampling.temperature
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _penalize(torch: Any, logits: Any, recent: list[int], penalty: float) -> Any:
    ids = torch.tensor(sorted(set(recent)), device=logits.device)
    values = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(values > 0, values / penalty, values * penalty)
    return logits


def _top_p(torch: Any, probs: Any, top_p: float) -> Any:
    sorted_probs, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(0, order, sorted_probs)
