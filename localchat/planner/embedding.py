"""An embedding model's plan: each input is read whole, in one ``llama_decode``.

llama.cpp pools an input's hidden states within one micro-batch, and a non-causal
encoder (BERT) cannot split an input over micro-batches at all, so the context, the
batch and the micro-batch are one size: the longest input.  That is the model's
trained context at most (BERT's learned positions end there), ``EMBED_DEFAULT_CTX``
unless asked for more (the attention's compute buffer grows with its square), and the
planner shrinks it towards ``EMBED_MIN_CTX`` when memory is short.  No generation cache
is kept beyond that one batch, and one request runs at a time.  Flash attention is on
(unless asked off), on the CPU too: a batch of whole inputs is all prompt, where it halves
the time of a BERT's 512-token batches on two cores (the KQ matrix is never formed).
"""

from __future__ import annotations

from dataclasses import replace

from localchat.planner.plan import PlanRequest

EMBED_DEFAULT_CTX = 2048
EMBED_MIN_CTX = 512


def embedding_request(request: PlanRequest, n_ctx_train: int) -> PlanRequest:
    """``request`` for an embedding model trained on ``n_ctx_train`` tokens."""
    longest = max(n_ctx_train, 1)
    n_ctx = min(request.n_ctx, longest) if request.n_ctx else None
    default_ctx = min(EMBED_DEFAULT_CTX, longest)
    return replace(
        request,
        n_ctx=n_ctx,
        default_ctx=default_ctx,
        min_ctx=min(EMBED_MIN_CTX, default_ctx),
        n_batch=longest,  # the planner caps both at the context it picks
        n_ubatch=longest,
        n_parallel=1,  # one input per sequence in a batch: no generation slots
        parallel_auto=False,
        flash_attn=True if request.flash_attn is None else request.flash_attn,
    )


def embedding_line(pooling: str, n_ctx: int, n_ctx_train: int, asked: int | None) -> str:
    """The plan's reason line for an embedding model."""
    line = (
        f"embedding model ({pooling} pooling): inputs of up to {n_ctx} tokens, each read "
        f"whole in one batch; no generation cache"
    )
    if asked and asked > n_ctx_train:
        line += f" (context capped at the {n_ctx_train} tokens it was trained for)"
    return line
