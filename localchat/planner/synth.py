"""A ``GgufInfo`` from catalog figures (``ArchNumbers`` + file size) when no header can be read.

Parameters per tensor group follow the architecture numbers; bytes are spread at the
file's average bits per weight.  Less exact than a header (the real quant mix gives
the embedding and output other types), good to a few percent for planning offline.
"""

from __future__ import annotations

from localchat.catalog.schema import ArchNumbers
from localchat.gguf.info import SWA_PATTERN_BY_ARCH, GgufInfo, LayerBytes

FAMILY_ARCH = {"gemma3": "gemma3", "gemma2": "gemma2", "mixtral": "llama", "qwen2": "qwen2"}
TIED_EMBEDDING_MAX_N_EMBD = (
    3072  # small models tie the output to the embedding (Llama 3.2, Qwen2.5)
)


def _architecture(family: str) -> str:
    if family.startswith("llama"):
        return "llama"
    return FAMILY_ARCH.get(family, family or "llama")


def _tied(arch: ArchNumbers, architecture: str) -> bool:
    return architecture.startswith("gemma") or arch.n_embd <= TIED_EMBEDDING_MAX_N_EMBD


def _layer_params(arch: ArchNumbers) -> tuple[int, int]:
    """(dense, expert) parameters of one block."""
    attention = arch.n_embd * arch.head_dim * (2 * arch.n_head + 2 * arch.n_head_kv)
    ffn = 3 * arch.n_embd * arch.n_ff
    if arch.n_expert > 1:
        return attention + arch.n_embd * arch.n_expert + 2 * arch.n_embd, ffn * arch.n_expert
    return attention + ffn + 2 * arch.n_embd, 0


def info_from_arch(
    arch: ArchNumbers,
    *,
    quant: str,
    file_bytes: int,
    files: tuple[str, ...] = (),
    model_name: str = "",
    family: str = "",
    tied_output: bool | None = None,
    pooling: str | None = None,
) -> GgufInfo:
    """Synthesize the planner's view of a model from catalog figures."""
    architecture = _architecture(family)
    tied = _tied(arch, architecture) if tied_output is None else tied_output
    dense, expert = _layer_params(arch)
    embedding = arch.n_vocab * arch.n_embd
    total_params = embedding * (1 if tied else 2) + arch.n_layers * (dense + expert)
    bytes_per_param = file_bytes / max(total_params, 1)
    layer = LayerBytes(
        dense_bytes=int(dense * bytes_per_param), expert_bytes=int(expert * bytes_per_param)
    )
    input_bytes = int(embedding * bytes_per_param)
    norm_bytes = 4 * arch.n_embd
    period = SWA_PATTERN_BY_ARCH.get(architecture, 0)
    swa = tuple(
        arch.n_swa > 0 and (period == 0 or il % period < period - 1) for il in range(arch.n_layers)
    )
    return GgufInfo(
        architecture=architecture,
        model_name=model_name,
        files=files,
        file_bytes=file_bytes,
        quant=quant,
        n_layers=arch.n_layers,
        n_embd=arch.n_embd,
        n_head=(arch.n_head,) * arch.n_layers,
        n_head_kv=(arch.n_head_kv,) * arch.n_layers,
        head_dim_k=arch.head_dim,
        head_dim_v=arch.head_dim,
        n_ff=arch.n_ff,
        n_vocab=arch.n_vocab,
        n_ctx_train=arch.n_ctx_train,
        n_expert=arch.n_expert,
        n_expert_used=arch.n_expert_used,
        n_swa=arch.n_swa,
        swa_layers=swa,
        input_bytes=input_bytes,
        layers=(layer,) * arch.n_layers,
        output_bytes=norm_bytes + (input_bytes if tied else int(embedding * bytes_per_param)),
        output_tied=tied,
        output_norm_bytes=norm_bytes,
        source="catalog figures",
        pooling=pooling,
    )
