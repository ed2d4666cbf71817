"""``localchat bench``'s measurements on the loaded context (llama-bench's pp and tg tests).

They run on slot 0 between the decode thread's steps (``Scheduler.exclusive``) with
made-up tokens, and leave slot 0's record of its cache true, so a later stream reuses
or cuts it correctly.
"""

from __future__ import annotations

import random
import time

from localchat.engine.llama.slots import Slot
from localchat.errors import EngineError
from localchat.llamacpp.batch import Batch
from localchat.llamacpp.context import DECODE_OK, LlamaContext
from localchat.llamacpp.model import LlamaModel
from localchat.llamacpp.sampler import Sampler
from localchat.types import SamplingParams

BENCH_SAMPLING = SamplingParams(temperature=0.7, top_k=40, top_p=0.95, min_p=0.05)


def time_prompt(context: LlamaContext, slot: Slot, n_tokens: int, kv_start: int) -> float:
    """Seconds to process ``n_tokens`` made-up tokens in batches after the first
    ``kv_start`` cached ones (the cache is cut there first)."""
    tokens = made_up_tokens(n_tokens, context.model.n_vocab, seed=kv_start)
    _cut(context, slot, kv_start)
    batch = Batch(context.n_batch, 1)
    try:
        started = time.perf_counter()
        for first in range(0, n_tokens, context.n_batch):
            chunk = tokens[first : first + context.n_batch]
            batch.clear()
            last = first + len(chunk) >= n_tokens
            batch.add_run(chunk, len(slot.cached), slot.seq_id, last_logits=last)
            _decode(context, batch)
            slot.cached.extend(chunk)
        return time.perf_counter() - started
    finally:
        batch.close()


def time_decode(context: LlamaContext, slot: Slot, n_tokens: int, kv_start: int) -> float:
    """Seconds to sample and decode ``n_tokens`` tokens one by one after ``kv_start``
    cached tokens, as a stream does (llama-bench's tg test plus sampling)."""
    model: LlamaModel = context.model
    _cut(context, slot, kv_start)
    batch = Batch(1, 1)
    sampler = Sampler(model, BENCH_SAMPLING, seed=kv_start)
    try:
        token = made_up_tokens(1, model.n_vocab, seed=kv_start)[0]
        _decode_one(context, batch, slot, token)  # pays for the prompt token: not timed
        started = time.perf_counter()
        for _ in range(n_tokens):
            _decode_one(context, batch, slot, sampler.sample(context, 0))
        return time.perf_counter() - started
    finally:
        sampler.close()
        batch.close()


def made_up_tokens(n_tokens: int, n_vocab: int, *, seed: int) -> list[int]:
    """Random ordinary token ids, as llama-bench feeds (the text does not matter for speed)."""
    rng = random.Random(seed)
    first = min(1000, n_vocab // 2)  # past the special tokens small vocabularies start with
    return [rng.randrange(first, n_vocab) for _ in range(n_tokens)]


def _cut(context: LlamaContext, slot: Slot, kv_start: int) -> None:
    keep = min(kv_start, len(slot.cached))
    context.seq_remove(slot.seq_id, keep, -1)
    del slot.cached[keep:]


def _decode_one(context: LlamaContext, batch: Batch, slot: Slot, token: int) -> None:
    batch.clear()
    batch.add(token, len(slot.cached), slot.seq_id, logits=True)
    _decode(context, batch)
    slot.cached.append(token)


def _decode(context: LlamaContext, batch: Batch) -> None:
    status = context.decode(batch)
    if status != DECODE_OK:
        raise EngineError(f"llama.cpp failed while timing: llama_decode returned {status}")
