"""Models the GPU check writes: real tensor shapes, zero-filled weights, a vocabulary
llama.cpp can tokenize with.

The tensor data is a sparse hole (``tests/fixtures/gguf_files.write_gguf``), so a
5 GB or 26 GB file takes a second to write and no disk; llama.cpp loads it like any
other (zeros are valid weights: the model just says nothing useful), so buffer sizes,
VRAM use, offload and decode speed are real.  The vocabulary is SentencePiece with
byte fallback (every text tokenizes, to bytes), so ``localchat ask`` runs on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Specials, then the 256 byte tokens, then filler pieces up to n_vocab.
UNKNOWN, CONTROL, NORMAL, BYTE = 2, 3, 1, 6
DENSE = {  # Llama-3-8B's shapes: 32 layers, ~4.6 GB at Q4_K_M
    "n_layers": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 8, "n_ff": 14336,
    "n_vocab": 128256, "n_ctx_train": 8192,
}  # fmt: skip
DENSE_QUICK = {**DENSE, "n_layers": 8, "n_embd": 1024, "n_head": 16, "n_ff": 2816, "n_vocab": 32000}
MOE = {  # huozi3 (Mixtral-8x7B): 32 layers of 8 experts, 26 GB at Q4_0
    "n_layers": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 8, "n_ff": 14336,
    "n_vocab": 57002, "n_ctx_train": 32768, "n_expert": 8, "n_expert_used": 2,
}  # fmt: skip
MOE_QUICK = {**MOE, "n_layers": 4, "n_embd": 1024, "n_head": 16, "n_ff": 2048, "n_vocab": 32000}


def spm_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, types): <unk> <s> </s>, <0x00>..<0xFF>, "▁" (a space), then "▁tN"."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581"]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    tokens += [f"\u2581t{i}" for i in range(len(tokens), n_vocab)]
    types += [NORMAL] * (n_vocab - len(types))
    scores = [0.0] * 259 + [-float(i) for i in range(259, n_vocab)]
    return tokens, scores, types


def write_model(path: Path, name: str, quant: str, shape: dict[str, Any]) -> Path:
    """A llama-architecture GGUF (dense, or MoE when ``n_expert`` is in ``shape``)."""
    from tests.fixtures.gguf_files import llama_spec, write_gguf

    spec = llama_spec(name=name, quant=quant, with_tokens=False, **shape)
    spec.tokens, spec.token_scores, spec.token_types = spm_vocab(shape["n_vocab"])
    spec.metadata["tokenizer.ggml.model"] = "llama"
    spec.metadata["tokenizer.ggml.unknown_token_id"] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_gguf(path, spec)[0]


def write_models(folder: Path, quick: bool) -> tuple[Path, Path]:
    """(dense, moe) under ``folder``; ``quick``: small shapes, for trying the kit on a CPU."""
    dense = write_model(
        folder / "dense-Q4_K_M.gguf", "gpu-check dense", "Q4_K_M", DENSE_QUICK if quick else DENSE
    )
    moe = write_model(
        folder / "moe-Q4_0.gguf", "gpu-check moe", "Q4_0", MOE_QUICK if quick else MOE
    )
    return dense, moe
