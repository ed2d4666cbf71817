"""The memory model against hand-computed figures (llama.cpp's rules, fitting.md §5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.errors import ConfigError
from localchat.gguf import read_gguf
from localchat.planner.memory import (
    MemorySettings,
    MiB,
    compute_bytes_peak,
    estimate_memory,
    kv_row_bytes,
    layer_devices,
)
from tests.fixtures.gguf_files import tiny_spec, write_gguf

GiB = 1 << 30


@pytest.fixture(scope="module")
def llama70b(llama70b_q4_k_m_gguf: Path):
    return read_gguf(llama70b_q4_k_m_gguf)


def test_kv_cache_70b(llama70b) -> None:
    # 80 layers x 8192 cells x (K 8 heads x 128 + V 8 x 128) x 2 bytes = 2.5 GiB (320 KiB/token)
    est = estimate_memory(llama70b, MemorySettings(n_ctx=8192))
    assert est.cpu.kv_bytes == 80 * 8192 * 2048 * 2 == int(2.5 * GiB)
    # q8_0: 34 bytes per 32 elements -> 1.0625 bytes/element
    est = estimate_memory(llama70b, MemorySettings(n_ctx=8192, type_k="q8_0", type_v="q8_0"))
    assert est.cpu.kv_bytes == 80 * 8192 * 2 * (1024 // 32 * 34) == 1360 * MiB
    # q4_0 K + f16 V
    est = estimate_memory(llama70b, MemorySettings(n_ctx=8192, type_k="q4_0"))
    assert est.cpu.kv_bytes == 80 * 8192 * (1024 // 32 * 18 + 1024 * 2)
    # n_ctx is padded to 256 cells: 5000 -> 5120
    est = estimate_memory(llama70b, MemorySettings(n_ctx=5000))
    assert est.cpu.kv_bytes == 80 * 5120 * 2048 * 2


def test_kv_row_bytes() -> None:
    assert kv_row_bytes("f16", 1024) == 2048
    assert kv_row_bytes("q8_0", 1024) == 1088
    assert kv_row_bytes("q4_0", 1024) == 576
    with pytest.raises(ConfigError, match="unknown KV cache type"):  # exit 2, not "internal"
        kv_row_bytes("q3_k", 1024)


def test_layer_placement_counts_output_as_a_layer() -> None:
    n = 80
    # n_gpu_layers = 1: only the output layer (index n) on the GPU
    assert layer_devices(n, MemorySettings(n_ctx=512, n_gpu_layers=1), 1) == [-1] * n + [0]
    # n_layer + 1: everything
    assert layer_devices(n, MemorySettings(n_ctx=512, n_gpu_layers=81), 1) == [0] * (n + 1)
    # 40: i_gpu_start = 81 - 40 = 41, so layers 41..79 and the output
    devices = layer_devices(n, MemorySettings(n_ctx=512, n_gpu_layers=40), 1)
    assert devices.index(0) == 41 and devices.count(0) == 40
    # two GPUs split 50/50 over the 81 offloaded layers: GPU0 gets fractions < 0.5
    devices = layer_devices(n, MemorySettings(n_ctx=512, n_gpu_layers=81, tensor_split=(1, 1)), 2)
    assert devices.count(0) == 41 and devices.count(1) == 40 and devices[-1] == 1


def test_weights_follow_the_layers(llama70b) -> None:
    est = estimate_memory(llama70b, MemorySettings(n_ctx=4096, n_gpu_layers=40), n_gpus=1)
    gpu_layers = sum(layer.total_bytes for layer in llama70b.layers[41:])
    assert est.gpus[0].weights_bytes == gpu_layers + llama70b.output_bytes
    kv_per_layer = 4096 * 2048 * 2
    assert est.gpus[0].kv_bytes == 39 * kv_per_layer
    assert est.cpu.kv_bytes == 41 * kv_per_layer
    cpu_layers = sum(layer.total_bytes for layer in llama70b.layers[:41])
    # the Q4_K matmul weights of CPU layers are repacked (x86 AVX2): CPU_REPACK on top
    assert est.cpu.weights_bytes == llama70b.input_bytes + cpu_layers + est.cpu.repack_bytes
    assert 0 < est.cpu.repack_bytes < cpu_layers


def test_tied_output_is_copied_to_the_gpu(tmp_path: Path) -> None:
    info = read_gguf(write_gguf(tmp_path / "tied.gguf", tiny_spec(tied_output=True))[0])
    embd = info.input_bytes
    on_gpu = estimate_memory(info, MemorySettings(n_ctx=512, n_gpu_layers=5), n_gpus=1)
    assert on_gpu.gpus[0].weights_bytes == sum(lb.total_bytes for lb in info.layers) + embd + 1024
    cpu_only = estimate_memory(info, MemorySettings(n_ctx=512), cpu_features=())
    assert cpu_only.cpu.weights_bytes == info.weights_bytes  # mapped once


def test_compute_buffer_70b_without_flash_attention(llama70b) -> None:
    # attention phase of one layer: KQ 4 B x 8192 kv x 512 tokens x 64 heads = 1024 MiB,
    # activations 4 x 512 x (3 x 8192 + 2 x 64 x 128 + 2 x 8 x 128) = 84 MiB;
    # inputs every layer reads: the f32 mask 4 x 8192 x 512 = 16 MiB and the i64 V-cache
    # row indices 8 x 1024 x 512 = 4 MiB  ->  1128 MiB, against the 1108.5 MiB llama.cpp
    # logs for Llama-3-70B at 8k (fitting.md §5): +1.8 %
    peak = compute_bytes_peak(llama70b, MemorySettings(n_ctx=8192), with_output=True)
    assert peak == (1024 + 84 + 16 + 4) * MiB
    # with flash attention the logits phase is the peak: 4 x 512 x (128256 + 2 x 8192)
    peak_fa = compute_bytes_peak(
        llama70b, MemorySettings(n_ctx=8192, flash_attn=True), with_output=True
    )
    assert peak_fa == 4 * 512 * (128256 + 2 * 8192)


def test_mixtral_ffn_uses_active_experts(mixtral_q4_0_gguf: Path) -> None:
    info = read_gguf(mixtral_q4_0_gguf)
    # FFN phase: 4 x 512 x (3 x 4096 + 3 x 14336 x 2 experts + 4096 expert sum + 8 router
    # logits), plus the f16 mask 2 x 512 x 512 that every layer reads
    settings = MemorySettings(n_ctx=512, flash_attn=True)
    ffn = 4 * 512 * (3 * 4096 + 3 * 14336 * 2 + 4096 + 8)
    assert compute_bytes_peak(info, settings, with_output=False) == ffn + 2 * 512 * 512
