"""Embeddings out of llama.cpp, typed: pooling types, a model's vector size, whether its
tokenizer appends an end token, and a sequence's pooled vector after ``llama_decode``.

A context made with ``ContextParams(embeddings=True, pooling_type=...)`` keeps, after
each decode, one pooled vector per sequence of the batch (``llama_get_embeddings_seq``);
it is overwritten by the next decode, so it is read at once.
"""

from __future__ import annotations

import math

from localchat.errors import EngineError
from localchat.llamacpp._bindings import C
from localchat.llamacpp.context import LlamaContext
from localchat.llamacpp.model import LlamaModel

# ``enum llama_pooling_type`` by the names GGUF metadata and localchat use
POOLING_TYPES: dict[str, int] = {
    "none": C.LLAMA_POOLING_TYPE_NONE,
    "mean": C.LLAMA_POOLING_TYPE_MEAN,
    "cls": C.LLAMA_POOLING_TYPE_CLS,
    "last": C.LLAMA_POOLING_TYPE_LAST,
    "rank": C.LLAMA_POOLING_TYPE_RANK,
}
_POOLING_NAMES = {value: name for name, value in POOLING_TYPES.items()}


def pooling_type(name: str) -> int:
    try:
        return POOLING_TYPES[name]
    except KeyError:
        raise EngineError(f"unknown pooling type {name!r}") from None


def context_pooling(context: LlamaContext) -> str:
    """The pooling the context applies ("mean", "cls", "last", "none", "rank")."""
    value = int(C.llama_pooling_type(context.handle))
    return _POOLING_NAMES.get(value, f"type {value}")


def embedding_size(model: LlamaModel) -> int:
    """The length of the model's output vectors (``n_embd_out``)."""
    return int(C.llama_model_n_embd_out(model.handle))


def appends_end_token(model: LlamaModel) -> bool:
    """Whether tokenizing with special tokens appends one at the end (EOS or BERT's SEP)."""
    vocab = model.vocab
    return bool(C.llama_vocab_get_add_eos(vocab)) or bool(C.llama_vocab_get_add_sep(vocab))


def sequence_embedding(context: LlamaContext, seq_id: int, size: int) -> list[float]:
    """The pooled vector of ``seq_id`` from the last decode; ``EngineError`` when llama.cpp
    has none, or when it is not finite (a broken model or file)."""
    pointer = C.llama_get_embeddings_seq(context.handle, seq_id)
    if not pointer:
        raise EngineError(f"llama.cpp returned no embedding for sequence {seq_id}")
    vector: list[float] = pointer[:size]
    if not all(math.isfinite(value) for value in vector):
        raise EngineError(
            "the model produced an embedding with NaN or infinite values",
            hint="the model file may be broken; try another quant",
        )
    return vector
