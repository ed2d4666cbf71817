"""An embedding context on a loaded model: inputs packed into batches, one pooled vector
each (``engine.embedding.Embedder``).

One context made with ``embeddings=True`` and the model's pooling.  Its KV cache (for
causal models; a BERT has none), its batch and its micro-batch are all ``max_tokens``
long: llama.cpp pools an input within one micro-batch, and aborts the process when a
non-causal model's batch exceeds the micro-batch, so no ``llama_decode`` here is ever
given more than ``max_tokens`` tokens.  Several inputs share a decode as sequences
0, 1, ... (at most ``MAX_SEQUENCES``); the cache is cleared before each one.  Calls
from several threads take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace

from localchat.errors import EngineError
from localchat.llamacpp.batch import Batch
from localchat.llamacpp.context import DECODE_OK, ContextParams, LlamaContext
from localchat.llamacpp.embedding import (
    appends_end_token,
    context_pooling,
    embedding_size,
    pooling_type,
    sequence_embedding,
)
from localchat.llamacpp.model import LlamaModel

MAX_SEQUENCES = 64  # inputs one llama_decode embeds together


def embedding_context_params(base: ContextParams, max_tokens: int, pooling: str) -> ContextParams:
    """``base`` (threads, cache types, flash attention) as an embedding context whose
    cache, batch and micro-batch each hold ``max_tokens``."""
    return replace(
        base,
        n_ctx=max_tokens,
        n_batch=max_tokens,
        n_ubatch=max_tokens,
        n_seq_max=MAX_SEQUENCES,
        kv_unified=True,
        embeddings=True,
        pooling_type=pooling_type(pooling),
    )


class LlamaEmbedder:
    """Pooled vectors from one embedding context; ``close()`` frees it (before the model)."""

    def __init__(self, model: LlamaModel, params: ContextParams) -> None:
        self._model = model
        self._context = LlamaContext(model, params)
        self.max_tokens = min(self._context.n_batch, params.n_ubatch, params.n_ctx)
        self.pooling = context_pooling(self._context)
        self.dimensions = embedding_size(model)
        self.n_vocab = model.n_vocab
        self._appends_end = appends_end_token(model)
        self._batch = Batch(self.max_tokens, MAX_SEQUENCES)
        self._lock = threading.Lock()
        self._closed = False

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text, add_special=True, parse_special=True)

    def truncate(self, tokens: list[int]) -> list[int]:
        if len(tokens) <= self.max_tokens:
            return tokens
        if self._appends_end and self.max_tokens > 1:
            return [*tokens[: self.max_tokens - 1], tokens[-1]]
        return tokens[: self.max_tokens]

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        for index, tokens in enumerate(inputs):
            if not 0 < len(tokens) <= self.max_tokens:
                raise EngineError(
                    f"input {index} has {len(tokens)} tokens; the embedding context takes "
                    f"1 to {self.max_tokens}"
                )
        vectors: list[list[float]] = []
        with self._lock:
            if self._closed:
                raise EngineError("the model was closed")
            for group in pack(inputs, self.max_tokens, MAX_SEQUENCES):
                vectors.extend(self._decode(group))
        return vectors

    def _decode(self, group: Sequence[Sequence[int]]) -> list[list[float]]:
        """One ``llama_decode`` of ``group`` (sequence i = input i); their vectors."""
        self._context.clear()
        batch = self._batch
        batch.clear()
        for seq_id, tokens in enumerate(group):
            for position, token in enumerate(tokens):
                batch.add(token, position, seq_id, logits=True)  # pooled: every token counts
        status = self._context.decode(batch)
        if status != DECODE_OK:
            raise EngineError(
                f"llama.cpp failed while embedding: llama_decode returned {status}",
                hint="see llama.log in localchat's log folder",
            )
        return [
            sequence_embedding(self._context, seq_id, self.dimensions)
            for seq_id in range(len(group))
        ]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._batch.close()
                self._context.close()


def pack(
    inputs: Sequence[Sequence[int]], max_tokens: int, max_sequences: int
) -> Iterator[Sequence[Sequence[int]]]:
    """Consecutive groups of inputs, each at most ``max_tokens`` tokens and
    ``max_sequences`` inputs all together (every input fits alone)."""
    start, tokens = 0, 0
    for index, item in enumerate(inputs):
        if index > start and (tokens + len(item) > max_tokens or index - start >= max_sequences):
            yield inputs[start:index]
            start, tokens = index, 0
        tokens += len(item)
    if start < len(inputs):
        yield inputs[start:]
