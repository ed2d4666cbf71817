"""What the planner needs from a GGUF: architecture numbers and tensor bytes grouped
the way llama.cpp places them (input embedding, each block's dense and expert parts,
output layer)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.checks import check_model
from localchat.gguf.header import GgufHeader
from localchat.gguf.pooling import pooling_of

# llama.cpp hard-codes the sliding-window pattern for these (llama-model.cpp set_swa_pattern):
# every n-th layer is a full-attention layer.
SWA_PATTERN_BY_ARCH = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2}

_LAYER_RE = re.compile(r"^blk\.(\d+)\.")
_EXPERT_RE = re.compile(r"_exps\.")  # the merged expert tensors (ffn_up_exps.weight, ...)
_OUTPUT_NAMES = ("output.weight", "output.bias", "output_norm.weight", "output_norm.bias")


@dataclass(frozen=True)
class LayerBytes:
    """One transformer block's weights: the dense part and the MoE expert part."""

    dense_bytes: int
    expert_bytes: int = 0
    # matmul weights whose row count is a multiple of 8, by GGML type name: what the CPU
    # backend may repack into its CPU_REPACK buffer (ggml-cpu repack.cpp).
    repackable_bytes_by_type: tuple[tuple[str, int], ...] = ()
    expert_repackable_bytes_by_type: tuple[tuple[str, int], ...] = ()  # the experts' share

    @property
    def total_bytes(self) -> int:
        return self.dense_bytes + self.expert_bytes


@dataclass(frozen=True)
class GgufInfo:
    """A model as the planner sees it; from real headers or synthesized from catalog figures."""

    architecture: str
    model_name: str
    files: tuple[str, ...]
    file_bytes: int  # all parts together (0 where unknown)
    quant: str | None
    n_layers: int
    n_embd: int
    n_head: tuple[int, ...]  # per layer
    n_head_kv: tuple[int, ...]  # per layer; 0 = no KV cache (recurrent layer)
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    n_expert: int
    n_expert_used: int
    n_swa: int
    swa_layers: tuple[bool, ...]
    input_bytes: int  # token embedding and friends: always on the CPU
    layers: tuple[LayerBytes, ...]
    output_bytes: int  # output norm + output matrix (the embedding again when tied)
    output_tied: bool
    output_norm_bytes: int = 0
    source: str = "header"  # "header" (local), "remote header", "catalog figures"
    pooling: str | None = None  # an embedding model's pooling ("mean", ...); None: generative

    @property
    def weights_bytes(self) -> int:
        """Bytes of all tensors as stored (a tied output counted once)."""
        output = self.output_norm_bytes if self.output_tied else self.output_bytes
        return self.input_bytes + sum(layer.total_bytes for layer in self.layers) + output

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 1


def info_from_headers(headers: Sequence[GgufHeader], source: str = "header") -> GgufInfo:
    """Combine the headers of one model's files (one, or every split part)."""
    if not headers:
        raise CorruptModelFile("no GGUF headers to read")
    if len(headers) > 1:
        check_model(headers)  # a split model's tensors, all parts together
    meta = headers[0].metadata
    name = headers[0].name
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise CorruptModelFile(f"{name}: general.architecture missing from the GGUF header")
    numbers = _ArchReader(meta, arch, name)
    n_layers = numbers.count("block_count")
    tensors = [t for header in headers for t in header.tensors]
    groups = _group_tensors(tensors, n_layers)
    n_head = numbers.per_layer("attention.head_count", n_layers)
    n_embd = numbers.count("embedding_length")
    head_dim_k = numbers.count("attention.key_length", default=n_embd // max(max(n_head), 1))
    n_head_kv = numbers.per_layer("attention.head_count_kv", n_layers, default=n_head)
    n_swa = numbers.count("attention.sliding_window", default=0)
    sizes = [h.file_size_bytes for h in headers]
    return GgufInfo(
        architecture=arch,
        model_name=str(meta.get("general.name", name)),
        files=tuple(h.name for h in headers),
        file_bytes=sum(s or 0 for s in sizes),
        quant=quant_from_file_type(meta.get("general.file_type")),
        n_layers=n_layers,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=numbers.count("attention.value_length", default=head_dim_k),
        n_ff=max(numbers.per_layer("feed_forward_length", n_layers, default=(0,) * n_layers)),
        n_vocab=_n_vocab(meta, headers[0], arch, groups.embedding_rows),
        n_ctx_train=numbers.count("context_length", default=4096),
        n_expert=numbers.count("expert_count", default=0),
        n_expert_used=numbers.count("expert_used_count", default=0),
        n_swa=n_swa,
        swa_layers=_swa_layers(meta, arch, n_layers, n_swa),
        input_bytes=groups.input_bytes,
        layers=groups.layers,
        output_bytes=groups.output_bytes,
        output_tied=groups.output_tied,
        output_norm_bytes=groups.output_norm_bytes,
        source=source,
        pooling=pooling_of(meta),
    )


class _ArchReader:
    def __init__(self, meta: dict[str, Any], arch: str, file_name: str) -> None:
        self.meta, self.arch, self.file_name = meta, arch, file_name

    def raw(self, key: str) -> Any:
        return self.meta.get(f"{self.arch}.{key}")

    def count(self, key: str, default: int | None = None) -> int:
        value = self.raw(key)
        if isinstance(value, list) and value:
            value = max(value)
        if value is None and default is not None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CorruptModelFile(
                f"{self.file_name}: {self.arch}.{key} missing or invalid in the GGUF header"
            )
        return value

    def per_layer(
        self, key: str, n_layers: int, default: tuple[int, ...] | None = None
    ) -> tuple[int, ...]:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if isinstance(value, list):
            if len(value) != n_layers or not all(isinstance(v, int) and v >= 0 for v in value):
                raise CorruptModelFile(f"{self.file_name}: {self.arch}.{key} has a bad array")
            return tuple(value)
        return (self.count(key),) * n_layers


@dataclass
class _Groups:
    input_bytes: int
    layers: tuple[LayerBytes, ...]
    output_bytes: int
    output_norm_bytes: int
    output_tied: bool
    embedding_rows: int | None


def _group_tensors(tensors: Sequence[Any], n_layers: int) -> _Groups:
    dense = [0] * n_layers
    expert = [0] * n_layers
    repack: list[dict[str, int]] = [{} for _ in range(n_layers)]
    expert_repack: list[dict[str, int]] = [{} for _ in range(n_layers)]
    input_bytes = output_matrix = output_norm = 0
    embedding_bytes, embedding_rows, has_output = 0, None, False
    for t in tensors:
        match = _LAYER_RE.match(t.name)
        if match and int(match.group(1)) < n_layers:
            il = int(match.group(1))
            is_expert = bool(_EXPERT_RE.search(t.name))
            if is_expert:
                expert[il] += t.n_bytes
            else:
                dense[il] += t.n_bytes
            if len(t.shape) >= 2 and t.shape[1] % 8 == 0 and t.name.endswith(".weight"):
                type_name = t.type_name
                repack[il][type_name] = repack[il].get(type_name, 0) + t.n_bytes
                if is_expert:
                    bucket = expert_repack[il]
                    bucket[type_name] = bucket.get(type_name, 0) + t.n_bytes
        elif t.name in _OUTPUT_NAMES:
            if t.name.startswith("output_norm"):
                output_norm += t.n_bytes
            else:
                output_matrix += t.n_bytes
                has_output = has_output or t.name == "output.weight"
        else:
            input_bytes += t.n_bytes
            if t.name == "token_embd.weight":
                embedding_bytes = t.n_bytes
                embedding_rows = t.shape[1] if len(t.shape) > 1 else None
    layers = tuple(
        LayerBytes(
            dense[i],
            expert[i],
            tuple(sorted(repack[i].items())),
            tuple(sorted(expert_repack[i].items())),
        )
        for i in range(n_layers)
    )
    tied = not has_output
    return _Groups(
        input_bytes=input_bytes,
        layers=layers,
        output_bytes=output_norm + (embedding_bytes if tied else output_matrix),
        output_norm_bytes=output_norm,
        output_tied=tied,
        embedding_rows=embedding_rows,
    )


def _n_vocab(meta: dict[str, Any], header: GgufHeader, arch: str, rows: int | None) -> int:
    value = meta.get(f"{arch}.vocab_size")
    if isinstance(value, int) and value > 0:
        return value
    return header.array_lengths.get("tokenizer.ggml.tokens") or rows or 0


def _swa_layers(meta: dict[str, Any], arch: str, n_layers: int, n_swa: int) -> tuple[bool, ...]:
    if n_swa <= 0:
        return (False,) * n_layers
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == n_layers:
        return tuple(bool(v) for v in pattern)
    period = pattern if isinstance(pattern, int) else SWA_PATTERN_BY_ARCH.get(arch, 0)
    if period <= 0:
        return (True,) * n_layers
    return tuple(il % period < period - 1 for il in range(n_layers))


def quant_from_file_type(file_type: Any) -> str | None:
    """``general.file_type`` 15 -> ``"Q4_K_M"``."""
    from gguf.constants import LlamaFileType

    if not isinstance(file_type, int):
        return None
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")
