"""Predicted decode speed from a bandwidth model.

Decoding one token reads every active weight once, plus the filled part of the KV
cache, so ``seconds per token = Σ_device bytes_read / (bandwidth × efficiency)``.
MoE layers read only ``n_expert_used / n_expert`` of their expert bytes.  The
efficiencies are what llama.cpp typically reaches of the published peak.
"""

from __future__ import annotations

from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware
from localchat.planner.memory import MemoryEstimate

GPU_EFFICIENCY = 0.75
CPU_EFFICIENCY = 0.60
DEFAULT_GPU_BANDWIDTH = 300e9
KV_AVERAGE_FILL = 0.5  # a conversation is, on average, half as long as the context


def gpu_bandwidth(hardware: Hardware, gpu: int) -> float:
    info = hardware.gpus[gpu]
    if info.bandwidth_bytes_per_s:
        return info.bandwidth_bytes_per_s
    from localchat.hardware.bandwidth import gpu_bandwidth_bytes_per_s

    return gpu_bandwidth_bytes_per_s(info.name, info.total_bytes) or DEFAULT_GPU_BANDWIDTH


def cpu_bandwidth(hardware: Hardware) -> float:
    if hardware.cpu.bandwidth_bytes_per_s:
        return hardware.cpu.bandwidth_bytes_per_s
    from localchat.hardware.bandwidth import estimate_cpu_bandwidth

    return estimate_cpu_bandwidth(hardware.cpu.physical_cores)[0]


def bytes_read_per_token(info: GgufInfo, estimate: MemoryEstimate) -> list[int]:
    """Per device (GPUs first, CPU last): weight and KV bytes read to decode one token."""
    n_devices = len(estimate.devices)
    read = [0] * n_devices
    active = info.n_expert_used / info.n_expert if info.n_expert > 1 else 1.0
    for il, device in enumerate(estimate.layer_devices[:-1]):
        layer = info.layers[il]
        read[device] += layer.dense_bytes + int(layer.expert_bytes * active)
    read[estimate.layer_devices[-1]] += info.output_bytes
    for index, device in enumerate(estimate.devices):
        read[index] += int(device.kv_bytes * KV_AVERAGE_FILL)
    return read


def predict_tokens_per_s(info: GgufInfo, estimate: MemoryEstimate, hardware: Hardware) -> float:
    read = bytes_read_per_token(info, estimate)
    seconds = read[-1] / (cpu_bandwidth(hardware) * CPU_EFFICIENCY)
    for gpu in range(len(estimate.gpus)):
        seconds += read[gpu] / (gpu_bandwidth(hardware, gpu) * GPU_EFFICIENCY)
    return 1.0 / seconds if seconds > 0 else 0.0
