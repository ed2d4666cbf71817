"""The numbers llama.cpp derives from a GGUF header before it creates the tensors.

A port of what ``llama_model_base::load_hparams`` (``src/llama-model.cpp``) and the
``load_arch_hparams`` of the architectures in ``gguf.layout`` read, limited to what
their tensor shapes depend on.  Like llama.cpp's ``LLAMA_LOAD_LOCALS``, per-layer values
are those of layer 0: llama.cpp creates every layer's tensors with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader, quote

# The tokenizer models whose vocabulary size is ``{arch}.vocab_size`` (dummy tokens).
NO_VOCAB_TOKENIZERS = frozenset({"none", "no_vocab"})
# Sliding-window layers: the default period (load_swa_pattern) and whether the
# architecture has them only when ``{arch}.attention.sliding_window`` is set.
SWA_RULES = {"gemma2": (2, False), "gemma3": (6, True)}
# Architectures whose rope.dimension_count must equal the head size (else llama.cpp throws).
FULL_ROPE_ARCHS = frozenset({"llama"})
_HINT = "the file is corrupt or was made for another program; download it again"


@dataclass(frozen=True)
class Hparams:
    """Layer-0 figures, named as in llama.cpp's ``llama_hparams``."""

    arch: str
    n_layer: int  # block_count less the nextn (MTP) layers
    n_embd: int
    n_head: int
    n_head_kv: int
    n_embd_head_k: int
    n_embd_head_v: int
    n_rot: int
    n_ff: int
    n_vocab: int | None  # None: no token list to tell (llama.cpp refuses the vocabulary)
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_ff_shexp: int
    n_cls_out: int
    longrope: bool

    @property
    def n_embd_k_gqa(self) -> int:
        return self.n_embd_head_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.n_embd_head_v * self.n_head_kv


def read_hparams(header: GgufHeader, arch: str) -> Hparams:
    """The figures of ``header`` for one of the architectures in ``gguf.layout`` (all of
    which need an RMS norm epsilon).  Raises ``CorruptModelFile`` for a key llama.cpp
    requires but the file lacks, or one of the wrong kind."""
    keys = _Keys(header, arch)
    n_layer_all = keys.required("block_count")
    keys.required("context_length")
    n_embd = keys.required("embedding_length")
    keys.required_float("attention.layer_norm_rms_epsilon")
    n_head = keys.layer0("attention.head_count", n_layer_all, default=0)
    n_head_kv = keys.layer0("attention.head_count_kv", n_layer_all, default=n_head)
    head_k = head_v = n_rot = 0  # a model without attention heads has no head size
    if n_head:
        head_k = keys.scalar("attention.key_length", n_embd // n_head)
        head_v = keys.scalar("attention.value_length", n_embd // n_head)
        n_rot = keys.scalar("rope.dimension_count", head_k)
        if arch in FULL_ROPE_ARCHS and n_rot != head_k:
            raise keys.fail(f"{arch}.rope.dimension_count is {n_rot}, the head size {head_k}")
    if _layer0_is_swa(keys):
        head_k = keys.scalar("attention.key_length_swa", head_k)
        head_v = keys.scalar("attention.value_length_swa", head_v)
        n_rot = keys.scalar("rope.dimension_count_swa", n_rot)
    labels = header.metadata.get(f"{arch}.classifier.output_labels")
    return Hparams(
        arch=arch,
        n_layer=n_layer_all - keys.scalar("nextn_predict_layers", 0),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_rot=n_rot,
        n_ff=keys.layer0("feed_forward_length", n_layer_all, default=0),
        n_vocab=vocab_size(header, arch),
        n_expert=keys.scalar("expert_count", 0),
        n_expert_used=keys.layer0("expert_used_count", n_layer_all, default=0),
        n_ff_exp=keys.layer0("expert_feed_forward_length", n_layer_all, default=0),
        n_ff_shexp=keys.scalar("expert_shared_feed_forward_length", 0),
        n_cls_out=len(labels) if isinstance(labels, list) and labels else 1,
        longrope=header.metadata.get(f"{arch}.rope.scaling.type") == "longrope",
    )


def vocab_size(header: GgufHeader, arch: str) -> int | None:
    """The vocabulary llama.cpp loads: the token list's length, or ``{arch}.vocab_size``
    dummy tokens for a model without a tokenizer; None when neither can be told."""
    model = header.metadata.get("tokenizer.ggml.model")
    if model in NO_VOCAB_TOKENIZERS:
        value = header.metadata.get(f"{arch}.vocab_size", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0
    return header.array_lengths.get("tokenizer.ggml.tokens")


def _layer0_is_swa(keys: _Keys) -> bool:
    """``llama_hparams::is_swa(0)`` after ``load_swa_pattern`` (dense_first false)."""
    rule = SWA_RULES.get(keys.arch)
    if rule is None:
        return False
    default_period, needs_window = rule
    if needs_window and keys.scalar("attention.sliding_window", 0) <= 0:
        return False
    pattern = keys.meta.get(f"{keys.arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return bool(pattern[0]) if pattern else False
    period = keys.scalar("attention.sliding_window_pattern", default_period)
    return period != 1  # layer 0 % period < period - 1, or every layer when period is 0


class _Keys:
    """``{arch}.*`` keys read as llama.cpp's ``get_key`` / ``get_key_or_arr`` do."""

    def __init__(self, header: GgufHeader, arch: str) -> None:
        self.header, self.arch, self.meta = header, arch, header.metadata

    def required(self, key: str) -> int:
        if f"{self.arch}.{key}" not in self.meta:
            raise self.fail(f"{self.arch}.{key} is missing (llama.cpp needs it)")
        return self.scalar(key, 0)

    def required_float(self, key: str) -> None:
        value = self.meta.get(f"{self.arch}.{key}")
        if value is None:
            raise self.fail(f"{self.arch}.{key} is missing (llama.cpp needs it)")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(f"{self.arch}.{key} is {_shown(value)}, not a number")

    def scalar(self, key: str, default: int) -> int:
        value = self.meta.get(f"{self.arch}.{key}", default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"{self.arch}.{key} is {_shown(value)}, not a count")
        return value

    def layer0(self, key: str, n_layer_all: int, *, default: int) -> int:
        """A per-layer value given once or as one entry per layer: layer 0's."""
        value = self.meta.get(f"{self.arch}.{key}")
        if not isinstance(value, list):
            return self.scalar(key, default)
        if len(value) != n_layer_all:
            raise self.fail(f"{self.arch}.{key} has {len(value)} entries for {n_layer_all} layers")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise self.fail(f"{self.arch}.{key} holds something other than counts")
        return int(value[0])

    def fail(self, reason: str) -> CorruptModelFile:
        return CorruptModelFile(f"{self.header.name}: {reason}", hint=_HINT)


def _shown(value: Any) -> str:
    return quote(value) if isinstance(value, str) else quote(repr(value))
