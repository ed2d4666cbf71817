"""Predicted decode and prompt-processing speed, modelled or calibrated by ``localchat bench``.

Decoding one token reads every active weight once plus the filled part of the KV cache
and does two flops per weight; prompt processing does the same flops per token but
reads each weight once per batch, so it is compute-bound.  Per device::

    decode s/token  = base + per_kv × tokens in the cache
    base            = weight bytes / bandwidth + weight flops / compute + overhead
    per_kv          = KV bytes per cached token / bandwidth + attention flops / compute
    prefill s/token = base' + per_kv' × tokens in the cache   (compute only)

Bandwidth on a CPU grows with threads up to the machine's total; compute is per
thread.  MoE layers read only ``n_expert_used / n_expert`` of their experts.  A
``SpeedScales`` from a bench on this machine multiplies each of the four terms by
measured / modelled, so one bench at one context calibrates every context.
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.gguf.info import GgufInfo
from localchat.hardware.bandwidth import estimate_cpu_bandwidth, gpu_bandwidth_bytes_per_s
from localchat.hardware.types import Hardware, RemoteDevice
from localchat.planner.memory import MemoryEstimate, MemorySettings, cpu_expert_layers
from localchat.planner.network import network_cost

GB = 1e9
GPU_EFFICIENCY = 0.75  # of the published peak bandwidth
CPU_EFFICIENCY = 0.85  # of the CPU's (estimated or measured) bandwidth
DEFAULT_GPU_BANDWIDTH = 300 * GB
CPU_STREAM_BYTES_PER_S_PER_THREAD = 30 * GB  # one core streaming while it computes
# flops/s per thread llama.cpp reaches on quantized weights: matrix-vector (decode),
# matrix-matrix (prompt batches), and attention over an f16 cache (decode, batches)
# (AVX-512 figures from quiet runs on a Zen 4 core; AVX2 and NEON scaled by vector width)
CPU_DECODE_FLOPS_PER_THREAD = {"avx512f": 48 * GB, "avx2": 32 * GB, "neon": 20 * GB}
CPU_BATCH_FLOPS_PER_THREAD = {"avx512f": 55 * GB, "avx2": 36 * GB, "neon": 27 * GB}
CPU_ATTENTION_FLOPS_PER_THREAD = {"avx512f": 32 * GB, "avx2": 20 * GB, "neon": 12 * GB}
CPU_BATCH_ATTENTION_FLOPS_PER_THREAD = {"avx512f": 64 * GB, "avx2": 40 * GB, "neon": 24 * GB}
GPU_FLOPS_PER_BYTE_PER_S = 60  # sustained quantized matmul flops per byte/s of bandwidth
PCIE_BYTES_PER_S = 20 * GB  # CPU layers' weights copied to the GPU for prompt batches
CPU_OVERHEAD_S_PER_LAYER = 15e-6  # graph ops and thread barriers, per token
GPU_OVERHEAD_S_PER_LAYER = 8e-6  # kernel launches, per token
HOST_OVERHEAD_S_PER_VOCAB = 2e-9  # logits copy and sampling over the vocabulary, per token
KV_AVERAGE_FILL = 0.5  # a conversation is, on average, half as long as the context
SCALE_MIN, SCALE_MAX = 0.05, 20.0  # measured / modelled beyond these is a broken run


@dataclass(frozen=True)
class SpeedTerms:
    """Seconds per token: decode and prefill, each ``base + per_kv × tokens cached``."""

    decode_base_s: float
    decode_per_kv_s: float
    prefill_base_s: float
    prefill_per_kv_s: float

    def decode_s(self, kv_tokens: float) -> float:
        return self.decode_base_s + self.decode_per_kv_s * kv_tokens

    def decode_tok_s(self, kv_tokens: float) -> float:
        return 1.0 / self.decode_s(kv_tokens)

    def prefill_s(self, n_prompt: int, kv_start: int = 0) -> float:
        """Seconds to process ``n_prompt`` tokens after ``kv_start`` already cached."""
        average_kv = kv_start + n_prompt / 2
        return n_prompt * (self.prefill_base_s + self.prefill_per_kv_s * average_kv)

    def prefill_tok_s(self, n_prompt: int, kv_start: int = 0) -> float:
        return n_prompt / self.prefill_s(n_prompt, kv_start) if n_prompt > 0 else 0.0

    def ttft_s(self, n_prompt: int) -> float:
        """Time to first token for an ``n_prompt``-token prompt: prefill, then one decode."""
        return self.prefill_s(n_prompt) + self.decode_s(n_prompt)

    def scaled(self, scales: SpeedTerms) -> SpeedTerms:
        return SpeedTerms(
            self.decode_base_s * scales.decode_base_s,
            self.decode_per_kv_s * scales.decode_per_kv_s,
            self.prefill_base_s * scales.prefill_base_s,
            self.prefill_per_kv_s * scales.prefill_per_kv_s,
        )

    def ratios(self, modelled: SpeedTerms) -> SpeedTerms:
        """measured (self) / modelled per term, clamped: the calibration scales."""

        def ratio(measured: float, model: float) -> float:
            if measured <= 0 or model <= 0:
                return 1.0
            return min(max(measured / model, SCALE_MIN), SCALE_MAX)

        return SpeedTerms(
            ratio(self.decode_base_s, modelled.decode_base_s),
            ratio(self.decode_per_kv_s, modelled.decode_per_kv_s),
            ratio(self.prefill_base_s, modelled.prefill_base_s),
            ratio(self.prefill_per_kv_s, modelled.prefill_per_kv_s),
        )

    def to_json(self) -> dict[str, float]:
        return {
            "decode_base_s": self.decode_base_s,
            "decode_per_kv_s": self.decode_per_kv_s,
            "prefill_base_s": self.prefill_base_s,
            "prefill_per_kv_s": self.prefill_per_kv_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, float]) -> SpeedTerms:
        return cls(
            float(data["decode_base_s"]),
            float(data["decode_per_kv_s"]),
            float(data["prefill_base_s"]),
            float(data["prefill_per_kv_s"]),
        )


@dataclass(frozen=True)
class SpeedPrediction:
    """What ``plan`` shows: decode at the average fill, prefill, and where they came from."""

    decode_tok_s: float
    prefill_tok_s: float
    terms: SpeedTerms
    source: str  # "modelled" or "measured: ..." (a bench on this machine)
    kv_tokens: int  # the fill the decode figure assumes
    n_prompt: int = 512  # the prompt length prefill_tok_s is for

    def ttft_s(self, n_prompt: int) -> float:
        return self.terms.ttft_s(n_prompt)


@dataclass(frozen=True)
class Calibration:
    """Scales from ``localchat bench`` and which bench they came from."""

    scales: SpeedTerms
    source: str  # e.g. "measured: bench of gemma-3-270m (same model and settings)"


@dataclass(frozen=True)
class ThreadCounts:
    decode: int
    batch: int


def gpu_bandwidth(hardware: Hardware, gpu: int) -> float:
    """Bandwidth of offload device ``gpu`` in llama.cpp's order (RPC workers' first)."""
    remotes = getattr(hardware, "remotes", ())
    if gpu < len(remotes):
        return remote_bandwidth(hardware, remotes[gpu])
    info = hardware.gpus[gpu - len(remotes)]
    if info.bandwidth_bytes_per_s:
        return info.bandwidth_bytes_per_s
    return gpu_bandwidth_bytes_per_s(info.name, info.total_bytes) or DEFAULT_GPU_BANDWIDTH


def remote_bandwidth(hardware: Hardware, remote: RemoteDevice) -> float:
    """A worker's device: as stated (what-if), else on this machine (loopback) its best
    device, else unknown: a GPU's default."""
    if remote.bandwidth_bytes_per_s:
        return remote.bandwidth_bytes_per_s
    if remote.loopback and hardware.gpus:
        return gpu_bandwidth(hardware, len(hardware.remotes))
    if remote.loopback:  # this CPU, all physical cores; scaled as the GPU terms expect
        cores = hardware.cpu.physical_cores
        return cpu_stream_bandwidth(hardware, cores) / GPU_EFFICIENCY
    return DEFAULT_GPU_BANDWIDTH


def cpu_bandwidth(hardware: Hardware) -> float:
    if hardware.cpu.bandwidth_bytes_per_s:
        return hardware.cpu.bandwidth_bytes_per_s
    return estimate_cpu_bandwidth(hardware.cpu.physical_cores)[0]


def cpu_stream_bandwidth(hardware: Hardware, threads: int) -> float:
    """Bytes/s ``threads`` CPU threads stream: per-thread rate, capped by the machine."""
    total = cpu_bandwidth(hardware)
    return min(total, max(threads, 1) * CPU_STREAM_BYTES_PER_S_PER_THREAD) * CPU_EFFICIENCY


def _per_thread(table: dict[str, float], hardware: Hardware) -> float:
    features = {f.lower() for f in hardware.cpu.features}
    for flag in ("avx512f", "avx2", "neon"):
        if flag in features:
            return table[flag]
    if hardware.cpu.arch.lower() in ("arm64", "aarch64"):
        return table["neon"]
    return table["avx2"] / 2


@dataclass
class _DeviceWork:
    """Per token on one device: weight bytes and params, KV bytes and attention flops per
    cached token, layers run."""

    weight_bytes: float = 0.0
    weight_params: float = 0.0
    batch_params: float = 0.0  # the output matrix runs once per batch, not per prompt token
    kv_bytes_per_token: float = 0.0
    attention_flops_per_token: float = 0.0
    layers: int = 0


def _layer_params(info: GgufInfo, il: int) -> tuple[float, float]:
    """(dense, active expert) matmul parameters of layer ``il``."""
    attention = info.n_embd * info.head_dim_k * (2 * info.n_head[il] + 2 * info.n_head_kv[il])
    ffn = 3 * info.n_embd * info.n_ff
    if info.is_moe:
        return attention + info.n_embd * info.n_expert, ffn * info.n_expert_used
    return attention + ffn, 0.0


def _device_work(
    info: GgufInfo, settings: MemorySettings, estimate: MemoryEstimate
) -> list[_DeviceWork]:
    """What each device (GPUs first, the CPU last) reads and computes per token."""
    work = [_DeviceWork() for _ in estimate.devices]
    active = info.n_expert_used / info.n_expert if info.is_moe else 1.0
    placement = list(estimate.layer_devices)
    experts_on_cpu = set(cpu_expert_layers(info, settings, placement))
    for il, device in enumerate(placement[:-1]):
        layer = info.layers[il]
        dense_params, expert_params = _layer_params(info, il)
        expert_device = -1 if il in experts_on_cpu else device
        work[device].weight_bytes += layer.dense_bytes
        work[device].weight_params += dense_params
        work[device].batch_params += dense_params
        work[expert_device].weight_bytes += layer.expert_bytes * active
        work[expert_device].weight_params += expert_params
        work[expert_device].batch_params += expert_params
        work[device].layers += 1
        if info.n_head_kv[il]:
            head_dims = info.head_dim_k + info.head_dim_v
            work[device].attention_flops_per_token += 2 * info.n_head[il] * head_dims
    work[placement[-1]].weight_bytes += info.output_bytes
    work[placement[-1]].weight_params += info.n_embd * info.n_vocab
    for index, planned in enumerate(estimate.devices):  # the cache as planned (type, device)
        work[index].kv_bytes_per_token = planned.kv_bytes / max(settings.kv_cells, 1)
    return work


def _cpu_decode_s(work: _DeviceWork, hardware: Hardware, threads: int) -> float:
    """Seconds per token for the CPU's share: each thread streams and computes its slice
    of the weights, until the memory system as a whole is the limit (a roofline)."""
    per_thread_s = (
        work.weight_bytes / CPU_STREAM_BYTES_PER_S_PER_THREAD
        + 2 * work.weight_params / _per_thread(CPU_DECODE_FLOPS_PER_THREAD, hardware)
    )
    memory_s = work.weight_bytes / (cpu_bandwidth(hardware) * CPU_EFFICIENCY)
    return max(per_thread_s / max(threads, 1), memory_s) + CPU_OVERHEAD_S_PER_LAYER * work.layers


def model_terms(
    info: GgufInfo,
    settings: MemorySettings,
    estimate: MemoryEstimate,
    hardware: Hardware,
    threads: ThreadCounts,
) -> SpeedTerms:
    """The modelled seconds per token for this placement, hardware and thread counts."""
    work = _device_work(info, settings, estimate)
    cpu, gpus = work[-1], work[:-1]
    bandwidth = cpu_stream_bandwidth(hardware, threads.decode)
    decode_flops = _per_thread(CPU_DECODE_FLOPS_PER_THREAD, hardware) * threads.decode
    batch_flops = _per_thread(CPU_BATCH_FLOPS_PER_THREAD, hardware) * threads.batch
    attention_decode = _per_thread(CPU_ATTENTION_FLOPS_PER_THREAD, hardware) * threads.decode
    attention_batch = _per_thread(CPU_BATCH_ATTENTION_FLOPS_PER_THREAD, hardware) * threads.batch
    host = HOST_OVERHEAD_S_PER_VOCAB * info.n_vocab
    decode_base = _cpu_decode_s(cpu, hardware, threads.decode) + host
    decode_kv = (
        cpu.kv_bytes_per_token / bandwidth + cpu.attention_flops_per_token / attention_decode
    )
    prefill_base = 2 * cpu.batch_params / batch_flops
    prefill_kv = cpu.attention_flops_per_token / attention_batch
    offloaded_cpu_bytes = cpu.weight_bytes if any(g.layers for g in gpus) else 0.0
    for index, gpu in enumerate(gpus):
        if not gpu.layers and not gpu.weight_bytes:
            continue
        if _is_this_cpu(hardware, index):  # a worker on this machine, serving its CPU
            decode_base += (
                gpu.weight_bytes / bandwidth
                + 2 * gpu.weight_params / decode_flops
                + CPU_OVERHEAD_S_PER_LAYER * gpu.layers
            )
            decode_kv += (
                gpu.kv_bytes_per_token / bandwidth
                + gpu.attention_flops_per_token / attention_decode
            )
            prefill_base += 2 * gpu.batch_params / batch_flops
            prefill_kv += gpu.attention_flops_per_token / attention_batch
            continue
        gpu_bytes_per_s = gpu_bandwidth(hardware, index) * GPU_EFFICIENCY
        gpu_flops = gpu_bytes_per_s * GPU_FLOPS_PER_BYTE_PER_S
        decode_base += gpu.weight_bytes / gpu_bytes_per_s + GPU_OVERHEAD_S_PER_LAYER * gpu.layers
        decode_kv += gpu.kv_bytes_per_token / gpu_bytes_per_s
        prefill_base += 2 * gpu.batch_params / gpu_flops
        prefill_kv += gpu.attention_flops_per_token / gpu_flops
    if offloaded_cpu_bytes:
        # llama.cpp runs big batches of CPU layers on the GPU, copying their weights over
        prefill_base = min(prefill_base, _offloaded_prefill_s(info, work, hardware))
    decode_base += network_cost(info, estimate, hardware).per_token_s  # RPC workers' hops
    return SpeedTerms(decode_base, decode_kv, prefill_base, prefill_kv)


def _is_this_cpu(hardware: Hardware, device: int) -> bool:
    """Offload device ``device`` is a loopback worker's CPU: it runs as this CPU runs (the
    network hops are ``planner.network``'s)."""
    remotes = getattr(hardware, "remotes", ())
    if device >= len(remotes):
        return False
    remote = remotes[device]
    return remote.loopback and not remote.bandwidth_bytes_per_s and not hardware.gpus


def _offloaded_prefill_s(info: GgufInfo, work: list[_DeviceWork], hardware: Hardware) -> float:
    ubatch = 512
    total_params = sum(w.batch_params for w in work)
    gpu_flops = gpu_bandwidth(hardware, 0) * GPU_EFFICIENCY * GPU_FLOPS_PER_BYTE_PER_S
    copy_s = work[-1].weight_bytes / PCIE_BYTES_PER_S / ubatch
    return 2 * total_params / gpu_flops + copy_s


def predict_speed(
    info: GgufInfo,
    settings: MemorySettings,
    estimate: MemoryEstimate,
    hardware: Hardware,
    threads: ThreadCounts,
    *,
    calibration: Calibration | None = None,
    n_prompt: int = 512,
    n_parallel: int = 1,
) -> SpeedPrediction:
    """Decode tok/s per sequence with each sequence's cache ``KV_AVERAGE_FILL`` full, and
    prefill tok/s for an ``n_prompt``-token prompt.  ``settings.n_ctx`` is the whole cache:
    ``n_parallel`` sequences share it and decode together (weights read once per step)."""
    terms = model_terms(info, settings, estimate, hardware, threads)
    source = "modelled"
    if calibration is not None:
        terms = terms.scaled(calibration.scales)
        source = calibration.source
    n_ctx_seq = max(settings.n_ctx // max(n_parallel, 1), 1)
    kv_tokens = int(n_ctx_seq * KV_AVERAGE_FILL)
    step_s = terms.decode_s(kv_tokens * n_parallel) + (n_parallel - 1) * terms.prefill_base_s
    return SpeedPrediction(
        decode_tok_s=1.0 / step_s,
        prefill_tok_s=terms.prefill_tok_s(min(n_prompt, n_ctx_seq)),
        terms=terms,
        source=source,
        kv_tokens=kv_tokens,
        n_prompt=min(n_prompt, n_ctx_seq),
    )
