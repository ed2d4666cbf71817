"""``detect_hardware()``: CPU, RAM, GPUs and (on request) the llama.cpp build, as ``Hardware``."""

from __future__ import annotations

import dataclasses

from localchat.errors import BackendUnavailable
from localchat.hardware.amd import detect_amd
from localchat.hardware.amx import detect_amx
from localchat.hardware.apple import detect_apple, is_apple_silicon
from localchat.hardware.bandwidth import (
    estimate_cpu_bandwidth,
    gpu_bandwidth_bytes_per_s,
    measure_cpu_bandwidth,
)
from localchat.hardware.cpu import detect_cpu, ram_bytes
from localchat.hardware.llama_build import detect_llama_build
from localchat.hardware.nvidia import detect_nvidia, nvidia_hardware_present
from localchat.hardware.types import CpuInfo, GpuInfo, Hardware, LlamaBuildInfo

METAL_DEVICE_PREFIXES = ("MTL", "Metal")


def _with_cpu_bandwidth(cpu: CpuInfo, *, measure: bool) -> CpuInfo:
    if is_apple_silicon():
        known = gpu_bandwidth_bytes_per_s(cpu.model_name)
        if known is not None:
            return dataclasses.replace(
                cpu, bandwidth_bytes_per_s=known, bandwidth_source="apple: unified memory"
            )
    if measure:
        bandwidth, how = measure_cpu_bandwidth(cpu.model_name, cpu.logical_cores)
    else:
        bandwidth, how = estimate_cpu_bandwidth(cpu.physical_cores)
    return dataclasses.replace(cpu, bandwidth_bytes_per_s=bandwidth, bandwidth_source=how)


def _discrete_gpus() -> tuple[tuple[GpuInfo, ...], list[str]]:
    notes: list[str] = []
    nvidia = detect_nvidia()
    notes.extend(nvidia.notes)
    if not nvidia.gpus and nvidia_hardware_present():
        notes.append(f"NVIDIA GPU on the PCI bus but not usable: {nvidia.problem}")
    return nvidia.gpus + detect_amd(), notes


def _metal_from_build(gpu: GpuInfo, build: LlamaBuildInfo) -> GpuInfo | None:
    """The Metal budget as llama.cpp's own Metal device reports it."""
    for device in build.device_memory:
        if device.name.startswith(METAL_DEVICE_PREFIXES) and device.total_bytes > 0:
            return dataclasses.replace(
                gpu,
                total_bytes=device.total_bytes,
                free_bytes=min(device.free_bytes, gpu.free_bytes) or device.free_bytes,
                source="ggml",
            )
    return None


def _build_or_note(notes: list[str], *, capture_native_stderr: bool) -> LlamaBuildInfo | None:
    try:
        build = detect_llama_build(capture_native_stderr=capture_native_stderr)
    except BackendUnavailable as exc:
        notes.append(exc.one_line())
        return None
    if build is None:
        notes.append("llama-cpp-python is not installed")
    return build


def detect_hardware(
    *,
    include_build: bool = False,
    measure_bandwidth: bool = False,
    probe_amx: bool = False,
    capture_native_stderr: bool = True,
) -> Hardware:
    """What this machine has.

    ``include_build`` imports llama_cpp to read its capabilities and device memory
    (about 0.2 s); ``measure_bandwidth`` times a numpy copy once per CPU (cached);
    ``probe_amx`` runs a real AMX instruction in a child process when CPUID
    advertises AMX.  None of them is needed for a plan.  Inside a Textual app pass
    ``capture_native_stderr=False`` (see ``detect_llama_build``).
    """
    ram_total_bytes, ram_available_bytes = ram_bytes()
    cpu = detect_cpu(amx=detect_amx(execute=probe_amx))
    cpu = _with_cpu_bandwidth(cpu, measure=measure_bandwidth)
    notes: list[str] = []
    if is_apple_silicon():
        gpu, apple_notes = detect_apple(cpu.model_name, ram_total_bytes, ram_available_bytes)
        gpus: tuple[GpuInfo, ...] = (gpu,)
        notes.extend(apple_notes)
    else:
        gpus, gpu_notes = _discrete_gpus()
        notes.extend(gpu_notes)
    build = (
        _build_or_note(notes, capture_native_stderr=capture_native_stderr)
        if include_build
        else None
    )
    if build is not None and gpus and gpus[0].vendor == "apple" and gpus[0].source != "metal":
        metal = _metal_from_build(gpus[0], build)
        if metal is not None:
            gpus = (metal,)
            notes = [note for note in notes if not note.startswith("Metal budget estimated")]
    return Hardware(
        cpu=cpu,
        ram_total_bytes=ram_total_bytes,
        ram_available_bytes=ram_available_bytes,
        gpus=gpus,
        unified_memory=is_apple_silicon(),
        build=build,
        notes=tuple(notes),
    )
