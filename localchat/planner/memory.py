"""Memory accounting that mirrors llama.cpp's placement and buffer sizes.

For one model (``GgufInfo``) and one set of load settings it returns, per device,
the bytes llama.cpp will allocate: model weights, KV cache, compute buffers.

The rules, as llama.cpp applies them (llama-model.cpp, llama-kv-cache.cpp,
llama-context.cpp), checked against its logs on the real gemma-3-270m:

* layers ``il >= i_gpu_start = n_layer + 1 - n_gpu_layers`` go to a GPU; the
  output layer counts as layer ``n_layer`` (so ``n_layer + 1`` offloads all);
  GPUs share the offloaded layers by ``tensor_split`` (cumulative fractions);
  the input embedding always stays on the CPU.
* a tied output matrix is the embedding again: a second copy on the output's GPU.
* KV per attention layer on the layer's device: ``cells * (row(type_k,
  n_head_kv*head_dim_k) + row(type_v, n_head_kv*head_dim_v))`` with
  ``cells = pad(n_ctx, 256)``; sliding-window layers use
  ``min(cells, pad(n_swa * n_seq_max + n_ubatch, 256))`` unless the full-size SWA
  cache is on (llama.cpp's default, so llama-cpp-python's too).
* parallel sequences (slots) share one unified cache: ``n_ctx`` is all of them
  together (the engine gives each ``n_ctx / n_seq_max``), so KV and compute follow the
  total; only the host output buffer (logits, one row per sequence) and the
  sliding-window cache grow with ``n_seq_max``.
* compute buffer: the graph allocator's peak, the larger of the logits phase
  ``4 * n_ubatch * (n_vocab + 2 * n_embd)`` and a layer's peak: the attention
  (the KQ matrix ``4 * n_kv * n_ubatch * n_head`` without flash attention) or the
  FFN activations, plus the inputs every layer reads (the KQ masks).
* CPU_REPACK: on x86 with AVX2 (and on ARM), Q4_0 / Q4_K / IQ4_NL matmul weights
  of CPU layers with a row count divisible by 8 are copied into an interleaved
  layout, on top of the mmapped file.
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.errors import ConfigError
from localchat.gguf.info import GgufInfo

MiB = 1 << 20
GiB = 1 << 30
KV_PAD_CELLS = 256  # kv_size padding of current llama.cpp builds (older: 32, 256 with FA)
KQ_MASK_PAD = 64  # GGML_KQ_MASK_PAD: the mask's token dimension is padded to this

# bytes per element of the KV cache types llama.cpp accepts (block size, bytes per block)
KV_TYPE_BLOCKS: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q5_1": (32, 24),
    "q5_0": (32, 22),
    "q4_1": (32, 20),
    "q4_0": (32, 18),
    "iq4_nl": (32, 18),
}
REPACK_TYPES_X86 = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})
REPACK_TYPES_ARM = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q8_0"})


@dataclass(frozen=True)
class MemorySettings:
    """The llama.cpp parameters that decide memory use."""

    n_ctx: int
    n_gpu_layers: int = 0
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    n_batch: int = 512
    n_ubatch: int = 512
    swa_full: bool = True
    offload_kqv: bool = True
    op_offload: bool = True
    tensor_split: tuple[float, ...] = ()  # one share per GPU; empty = all on GPU 0
    n_cpu_moe: int = 0  # MoE: the expert tensors of layers 0..n_cpu_moe-1 stay in RAM
    n_seq_max: int = 1  # parallel sequences (slots) sharing the n_ctx cells

    @property
    def kv_cells(self) -> int:
        return pad(self.n_ctx, KV_PAD_CELLS)

    @property
    def ubatch(self) -> int:
        """llama-cpp-python: n_batch = min(n_ctx, n_batch), n_ubatch = min(n_batch, n_ubatch)."""
        return max(1, min(self.n_ubatch, self.n_batch, self.n_ctx))


@dataclass(frozen=True)
class DeviceMemory:
    """What one device holds, in bytes."""

    device: str  # "CPU", "GPU0", ...
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    reserve_bytes: int = 0
    repack_bytes: int = 0  # part of weights_bytes: CPU_REPACK copies

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.reserve_bytes

    @property
    def resident_bytes(self) -> int:
        """What must stay in memory: the mmapped pages of repacked tensors are read once,
        then clean page cache the OS can drop, so they count once (as the repack copy)."""
        return self.total_bytes - self.repack_bytes

    def to_json(self) -> dict[str, int | str]:
        return {
            "device": self.device,
            "weights": self.weights_bytes,
            "kv": self.kv_bytes,
            "compute": self.compute_bytes,
            "reserve": self.reserve_bytes,
            "total": self.total_bytes,
        }


def pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def kv_row_bytes(type_name: str, n_elements: int) -> int:
    try:
        block, size = KV_TYPE_BLOCKS[type_name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown KV cache type {type_name[:40]!r}",
            hint=f"use one of {', '.join(sorted(KV_TYPE_BLOCKS))}",
        ) from None
    return n_elements // block * size


def layer_devices(n_layers: int, settings: MemorySettings, n_gpus: int) -> list[int]:
    """Device of each layer 0..n_layers (the last entry is the output layer): -1 = CPU."""
    if n_gpus == 0 or settings.n_gpu_layers <= 0:
        return [-1] * (n_layers + 1)
    n_gpu_layers = min(settings.n_gpu_layers, n_layers + 1)
    i_gpu_start = n_layers + 1 - n_gpu_layers
    shares = list(settings.tensor_split) or [1.0] + [0.0] * (n_gpus - 1)
    total = sum(shares) or 1.0
    cumulative, running = [], 0.0
    for share in shares[:n_gpus]:
        running += share / total
        cumulative.append(running)
    devices = []
    for il in range(n_layers + 1):
        if il < i_gpu_start:
            devices.append(-1)
            continue
        fraction = (il - i_gpu_start) / n_gpu_layers
        gpu = next((i for i, edge in enumerate(cumulative) if fraction < edge), n_gpus - 1)
        devices.append(gpu)
    return devices


def kv_bytes_per_layer(info: GgufInfo, settings: MemorySettings) -> list[int]:
    cells = settings.kv_cells
    n_swa_cells = info.n_swa * max(settings.n_seq_max, 1) + settings.ubatch
    swa_cells = min(cells, pad(n_swa_cells, KV_PAD_CELLS))
    out = []
    for il in range(info.n_layers):
        n_head_kv = info.n_head_kv[il]
        if n_head_kv == 0:
            out.append(0)
            continue
        layer_cells = swa_cells if info.swa_layers[il] and not settings.swa_full else cells
        row = kv_row_bytes(settings.type_k, n_head_kv * info.head_dim_k) + kv_row_bytes(
            settings.type_v, n_head_kv * info.head_dim_v
        )
        out.append(layer_cells * row)
    return out


def cpu_expert_layers(info: GgufInfo, settings: MemorySettings, devices: list[int]) -> list[int]:
    """GPU layers whose MoE expert tensors are kept in RAM (llama.cpp's ``--n-cpu-moe``)."""
    if not info.is_moe or settings.n_cpu_moe <= 0:
        return []
    return [il for il in range(min(settings.n_cpu_moe, info.n_layers)) if devices[il] != -1]


def repack_bytes(
    info: GgufInfo,
    layers_on_cpu: list[int],
    cpu_arch: str,
    cpu_features: tuple[str, ...] | list[str],
    *,
    experts_only: bool = False,
) -> int:
    """CPU_REPACK buffer: repackable matmul weights of the CPU layers (or of their experts)."""
    features = {f.lower() for f in cpu_features}
    if cpu_arch.lower() in ("arm64", "aarch64"):
        types = REPACK_TYPES_ARM
    elif "avx2" in features or "avx512f" in features:
        types = REPACK_TYPES_X86
    else:
        return 0
    return sum(
        size
        for il in layers_on_cpu
        for type_name, size in (
            info.layers[il].expert_repackable_bytes_by_type
            if experts_only
            else info.layers[il].repackable_bytes_by_type
        )
        if type_name in types
    )


def compute_bytes_peak(info: GgufInfo, settings: MemorySettings, *, with_output: bool) -> int:
    """The graph allocator's peak for one device that runs the layers (and maybe the output)."""
    ub = settings.ubatch
    n_head = max(info.n_head)
    head_dim = info.head_dim_k
    n_head_kv = max(info.n_head_kv) or 1
    n_kv = settings.kv_cells
    n_masks = 2 if any(info.swa_layers) else 1
    mask_rows = pad(ub, KQ_MASK_PAD)
    # graph inputs every layer reads stay allocated until the last layer: the KQ mask(s)
    # (f16 with flash attention, else f32) and, without FA, the V-cache row indices (i64)
    if settings.flash_attn:
        inputs = 2 * n_kv * mask_rows * n_masks
    else:
        inputs = 4 * n_kv * mask_rows * n_masks + 8 * n_head_kv * info.head_dim_v * ub
    activations = 4 * ub * (3 * info.n_embd + 2 * n_head * head_dim + 2 * n_head_kv * head_dim)
    attention = activations + (0 if settings.flash_attn else 4 * n_kv * ub * n_head)
    ffn_width = info.n_ff * max(info.n_expert_used, 1)
    moe_extra = info.n_embd + info.n_expert if info.n_expert > 1 else 0  # router, expert sum
    ffn = 4 * ub * (3 * info.n_embd + 3 * ffn_width + moe_extra)
    peak = max(attention, ffn) + inputs
    if with_output:
        peak = max(peak, 4 * ub * (info.n_vocab + 2 * info.n_embd))
    return peak


def output_buffer_bytes(info: GgufInfo, n_seq_max: int = 1) -> int:
    """llama_context's output buffer: logits for each sequence's last token, in host memory."""
    return 4 * info.n_vocab * max(n_seq_max, 1)


@dataclass(frozen=True)
class MemoryEstimate:
    devices: tuple[DeviceMemory, ...]  # GPUs first (GPU0, GPU1, ...), the CPU last
    layer_devices: tuple[int, ...]

    @property
    def cpu(self) -> DeviceMemory:
        return self.devices[-1]

    @property
    def gpus(self) -> tuple[DeviceMemory, ...]:
        return self.devices[:-1]


def estimate_memory(
    info: GgufInfo,
    settings: MemorySettings,
    *,
    n_gpus: int = 0,
    gpu_reserve_bytes: tuple[int, ...] = (),
    cpu_arch: str = "x86_64",
    cpu_features: tuple[str, ...] = ("avx2",),
    compute_scale: float = 1.0,
    n_remote: int = 0,
) -> MemoryEstimate:
    """Bytes per device for ``info`` loaded with ``settings`` on ``n_gpus`` GPUs + the CPU.

    The first ``n_remote`` of the ``n_gpus`` offload devices are RPC workers' (named
    RPC0, RPC1, ...; llama.cpp lists them before local GPUs); the rest are local GPUs.
    """
    devices = layer_devices(info.n_layers, settings, n_gpus)
    weights = [0] * (n_gpus + 1)  # index -1 is the CPU
    kv = [0] * (n_gpus + 1)
    weights[-1] += info.input_bytes
    kv_layers = kv_bytes_per_layer(info, settings)
    experts_on_cpu = cpu_expert_layers(info, settings, devices)
    for il, device in enumerate(devices[:-1]):
        layer = info.layers[il]
        if il in experts_on_cpu:
            weights[device] += layer.dense_bytes
            weights[-1] += layer.expert_bytes
        else:
            weights[device] += layer.total_bytes
        kv_device = device if settings.offload_kqv else -1
        kv[kv_device] += kv_layers[il]
    output_device = devices[-1]
    if output_device == -1 and info.output_tied:
        weights[-1] += info.output_norm_bytes  # the embedding itself is already mapped
    else:
        weights[output_device] += info.output_bytes
    cpu_layers = [il for il, device in enumerate(devices[:-1]) if device == -1]
    repack = repack_bytes(info, cpu_layers, cpu_arch, cpu_features)
    repack += repack_bytes(info, experts_on_cpu, cpu_arch, cpu_features, experts_only=True)
    weights[-1] += repack
    compute = _compute_per_device(
        info, settings, devices, n_gpus, cpu_layers, experts_on_cpu, n_remote
    )
    out = []
    for gpu in range(n_gpus):
        reserve = gpu_reserve_bytes[gpu] if gpu < len(gpu_reserve_bytes) else 0
        name = f"RPC{gpu}" if gpu < n_remote else f"GPU{gpu - n_remote}"
        out.append(
            DeviceMemory(name, weights[gpu], kv[gpu], int(compute[gpu] * compute_scale), reserve)
        )
    out.append(
        DeviceMemory("CPU", weights[-1], kv[-1], int(compute[-1] * compute_scale), 0, repack)
    )
    return MemoryEstimate(devices=tuple(out), layer_devices=tuple(devices))


def _compute_per_device(
    info: GgufInfo,
    settings: MemorySettings,
    devices: list[int],
    n_gpus: int,
    cpu_layers: list[int],
    experts_on_cpu: list[int],
    n_remote: int = 0,
) -> list[int]:
    compute = [0] * (n_gpus + 1)
    output_device = devices[-1]
    used = set(devices)
    for gpu in range(n_gpus):
        if gpu not in used:
            continue
        compute[gpu] = compute_bytes_peak(info, settings, with_output=gpu == output_device)
        if (cpu_layers or experts_on_cpu) and settings.op_offload and gpu >= n_remote:
            # big batches of CPU layers run on the GPU: their weights are copied over
            # (not to an RPC device: ggml's RPC backend offloads no ops)
            largest = max(
                [info.layers[il].total_bytes for il in cpu_layers]
                + [info.layers[il].expert_bytes for il in experts_on_cpu]
            )
            if output_device == -1 and not info.output_tied:
                largest = max(largest, info.output_bytes)
            compute[gpu] += largest
    host = output_buffer_bytes(info, settings.n_seq_max)
    if output_device == -1 or cpu_layers or experts_on_cpu:
        compute[-1] = compute_bytes_peak(info, settings, with_output=output_device == -1) + host
    else:
        compute[-1] = 4 * settings.ubatch * 2 * info.n_embd + host  # inputs staged on the host
    return compute
