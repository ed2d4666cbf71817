"""Tensor bytes grouped as llama.cpp places them, checked by hand arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.errors import CorruptModelFile
from localchat.gguf import read_gguf
from localchat.gguf.info import quant_from_file_type
from tests.fixtures.gguf_files import mixtral_spec, tiny_spec, write_gguf

# GGML block sizes: (elements per block, bytes per block)
Q4_K, Q6_K, Q4_0, Q8_0 = (256, 144), (256, 210), (32, 18), (32, 34)


def nbytes(n_elements: int, block: tuple[int, int]) -> int:
    return n_elements // block[0] * block[1]


def test_llama70b_groups(llama70b_q4_k_m_gguf: Path) -> None:
    info = read_gguf(llama70b_q4_k_m_gguf)
    assert (info.n_layers, info.n_embd, info.n_vocab, info.n_ctx_train) == (
        80,
        8192,
        128256,
        131072,
    )
    assert info.n_head == (64,) * 80 and info.n_head_kv == (8,) * 80
    assert (info.head_dim_k, info.head_dim_v, info.quant) == (128, 128, "Q4_K_M")
    # input: token_embd 8192 x 128256 in Q4_K
    assert info.input_bytes == nbytes(8192 * 128256, Q4_K) == 591_003_648
    # output: output.weight in Q6_K + output_norm f32
    assert info.output_bytes == nbytes(8192 * 128256, Q6_K) + 8192 * 4 == 861_913_088
    assert not info.output_tied
    # layer 0 gets more bits (first eighth): attn_v and ffn_down in Q6_K
    layer0 = (
        nbytes(8192 * 8192, Q4_K) * 2  # attn_q, attn_output
        + nbytes(8192 * 1024, Q4_K)  # attn_k
        + nbytes(8192 * 1024, Q6_K)  # attn_v
        + nbytes(8192 * 28672, Q4_K) * 2  # ffn_gate, ffn_up
        + nbytes(28672 * 8192, Q6_K)  # ffn_down
        + 2 * 8192 * 4  # two norms
    )
    assert info.layers[0].dense_bytes == layer0 == 544_079_872
    assert info.layers[0].expert_bytes == 0
    # layer 11: (11 - 10) % 3 != 2, so the plain Q4_K mix
    layer11 = layer0 - nbytes(8192 * 1024, Q6_K) + nbytes(8192 * 1024, Q4_K)
    layer11 += nbytes(28672 * 8192, Q4_K) - nbytes(28672 * 8192, Q6_K)
    assert info.layers[11].dense_bytes == layer11


def test_mixtral_experts_grouped_apart(mixtral_q4_0_gguf: Path) -> None:
    merged = read_gguf(mixtral_q4_0_gguf)
    experts = 3 * 8 * nbytes(4096 * 14336, Q4_0)
    assert merged.layers[0].expert_bytes == experts
    dense = nbytes(4096 * 4096, Q4_0) * 2 + nbytes(4096 * 1024, Q8_0) + nbytes(4096 * 1024, Q4_0)
    assert merged.layers[0].dense_bytes == dense + 4096 * 8 * 4 + 2 * 4096 * 4  # + router, norms
    assert (merged.n_expert, merged.n_expert_used, merged.n_vocab) == (8, 2, 57002)
    assert merged.is_moe


def test_one_tensor_per_expert_is_refused(gguf_dir: Path) -> None:
    """Pre-April-2024 Mixtral conversions: llama.cpp no longer loads them (it wants
    ffn_*_exps), so neither do show and plan."""
    legacy = write_gguf(gguf_dir / "legacy.gguf", mixtral_spec("Q4_0", legacy_experts=True))[0]
    with pytest.raises(CorruptModelFile, match="one tensor per expert"):
        read_gguf(legacy)


def test_tied_output_is_the_embedding(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tied.gguf", tiny_spec(tied_output=True))[0]
    info = read_gguf(path)
    assert info.output_tied
    assert info.output_bytes == nbytes(256 * 1000, Q8_0) + 256 * 4
    assert info.weights_bytes == tiny_spec(tied_output=True).tensor_bytes


def test_gemma_sliding_window_pattern(gemma_path: Path) -> None:
    info = read_gguf(gemma_path)
    assert info.n_swa == 512
    assert [il for il, swa in enumerate(info.swa_layers) if not swa] == [5, 11, 17]
    assert info.output_tied and info.n_vocab == 262144


def test_quant_from_file_type() -> None:
    assert quant_from_file_type(15) == "Q4_K_M"
    assert quant_from_file_type(0) == "F32"
    assert quant_from_file_type(999) is None
    assert quant_from_file_type("15") is None
