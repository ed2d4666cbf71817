"""A llama.cpp context (``llama_context``): the KV cache, its sequences, and decode.

One context holds ``n_seq_max`` sequences in one unified KV cache (``kv_unified``):
cells are shared out as the sequences need them, and a prompt prefix decoded once can
be shared by several sequences (``seq_copy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.errors import EngineError
from localchat.llamacpp._bindings import C
from localchat.llamacpp.batch import Batch
from localchat.llamacpp.ggml import GGML_TYPES
from localchat.llamacpp.model import LlamaModel, LoadFailed

# llama_decode's answers
DECODE_OK = 0
DECODE_NO_KV_SLOT = 1  # no room in the KV cache for the batch
DECODE_ABORTED = 2


@dataclass(frozen=True)
class ContextParams:
    """How to create a context (``llama_context_params``)."""

    n_ctx: int  # KV cells of the whole cache, all sequences together
    n_batch: int = 512  # most tokens one llama_decode takes
    n_ubatch: int = 512  # most tokens one graph computes
    n_seq_max: int = 1
    n_threads: int = 1
    n_threads_batch: int = 1
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    kv_unified: bool = True
    swa_full: bool = True  # llama.cpp's default: a full-size cache for sliding-window layers
    embeddings: bool = False  # pooled (or per-token) hidden states instead of logits
    pooling_type: int = -1  # ``enum llama_pooling_type``; -1: the model's own (unspecified)


def ggml_type(name: str) -> int:
    try:
        return GGML_TYPES[name.lower()]
    except KeyError:
        raise EngineError(f"unknown KV cache type {name!r}", hint="use f16, q8_0 or q4_0") from None


class LlamaContext:
    """A context on a loaded model; ``close()`` frees it (before the model)."""

    def __init__(self, model: LlamaModel, params: ContextParams) -> None:
        c_params = C.llama_context_default_params()
        c_params.n_ctx = params.n_ctx
        c_params.n_batch = min(params.n_batch, params.n_ctx)
        c_params.n_ubatch = min(params.n_ubatch, c_params.n_batch)
        c_params.n_seq_max = params.n_seq_max
        c_params.n_threads = params.n_threads
        c_params.n_threads_batch = params.n_threads_batch
        c_params.flash_attn_type = (
            C.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if params.flash_attn
            else C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        c_params.type_k = ggml_type(params.type_k)
        c_params.type_v = ggml_type(params.type_v)
        c_params.kv_unified = params.kv_unified
        c_params.swa_full = params.swa_full
        c_params.embeddings = params.embeddings
        c_params.pooling_type = params.pooling_type
        handle = C.llama_init_from_model(model.handle, c_params)
        if not handle:
            raise LoadFailed("llama.cpp could not create a context for the model")
        self.handle = handle
        self.model = model
        self.n_ctx = int(C.llama_n_ctx(handle))
        self.n_batch = int(C.llama_n_batch(handle))
        self.n_seq_max = int(C.llama_n_seq_max(handle))
        self._memory = C.llama_get_memory(handle)

    @property
    def n_threads(self) -> int:
        return int(C.llama_n_threads(self.handle))

    @property
    def n_threads_batch(self) -> int:
        return int(C.llama_n_threads_batch(self.handle))

    def decode(self, batch: Batch) -> int:
        """``llama_decode``: 0 done, 1 no KV room (nothing changed), 2 aborted, < 0 error."""
        return int(C.llama_decode(self.handle, batch.c_batch))

    # -- the KV cache's sequences ------------------------------------------

    def seq_remove(self, seq_id: int, start: int = -1, end: int = -1) -> bool:
        """Drop positions [start, end) of a sequence (-1: open end); False when a part
        of a sequence cannot be removed (recurrent models), whole ones always can."""
        return bool(C.llama_memory_seq_rm(self._memory, seq_id, start, end))

    def seq_copy(self, source: int, target: int, start: int = -1, end: int = -1) -> None:
        """Make ``target`` share ``source``'s cells (no copy in a unified cache)."""
        C.llama_memory_seq_cp(self._memory, source, target, start, end)

    def seq_last_position(self, seq_id: int) -> int:
        """The highest position a sequence holds, -1 when it is empty."""
        return int(C.llama_memory_seq_pos_max(self._memory, seq_id))

    def clear(self) -> None:
        C.llama_memory_clear(self._memory, True)

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle:
            C.llama_free(handle)
