"""``localchat hw``: what this machine has, and what the installed llama.cpp can use of it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from localchat import services

if TYPE_CHECKING:
    from localchat.services import AmxStatus, CpuInfo, GpuInfo, Hardware, LlamaBuildInfo

GIB = 1024**3


def gib(size_bytes: float) -> str:
    return f"{size_bytes / GIB:.1f} GiB"


def gb_per_s(bytes_per_s: float | None) -> str:
    return "unknown" if bytes_per_s is None else f"{bytes_per_s / 1e9:.0f} GB/s"


def amx_text(amx: AmxStatus | None) -> str:
    if amx is None:
        return "n/a"
    if not amx.cpuid_advertises:
        return "not advertised"
    if amx.usable:
        return "usable"
    return (
        f"advertised but NOT usable (os_enabled={amx.os_enabled}, permitted={amx.permitted}, "
        f"executes={amx.executes}): use a GGML_NATIVE=OFF build"
    )


def cpu_lines(cpu: CpuInfo) -> list[str]:
    return [
        f"CPU        {cpu.model_name} ({cpu.arch}), {cpu.physical_cores} cores / "
        f"{cpu.logical_cores} threads",
        f"           ISA: {' '.join(cpu.features) or 'unknown'}",
        f"           AMX: {amx_text(cpu.amx)}",
        f"           memory bandwidth: {gb_per_s(cpu.bandwidth_bytes_per_s)} "
        f"({cpu.bandwidth_source})",
    ]


def gpu_line(gpu: GpuInfo) -> str:
    extra = [gpu.source]
    if gpu.compute_capability:
        extra.append(f"compute {gpu.compute_capability}")
    if gpu.driver_version:
        extra.append(f"driver {gpu.driver_version}")
    return (
        f"           #{gpu.index} {gpu.name}: {gib(gpu.total_bytes)} total, "
        f"{gib(gpu.free_bytes)} free, {gb_per_s(gpu.bandwidth_bytes_per_s)} ({', '.join(extra)})"
    )


def gpu_lines(hardware: Hardware) -> list[str]:
    if not hardware.gpus:
        return ["GPUs       none found"]
    label = "GPU (unified memory)" if hardware.unified_memory else "GPUs"
    return [f"{label:<10} {len(hardware.gpus)}"] + [gpu_line(gpu) for gpu in hardware.gpus]


def build_lines(build: LlamaBuildInfo | None) -> list[str]:
    if build is None:
        return ["llama.cpp  not inspected"]
    code = services.build_code(build)
    lines = [
        f"llama.cpp  llama-cpp-python {build.version}, GPU offload: "
        f"{'yes' if build.supports_gpu_offload else 'no'}, RPC workers: "
        f"{'yes' if build.supports_rpc else 'no (see `localchat doctor` to rebuild)'}",
        f"           CPU code: {' '.join(code.isa) or 'n/a'} ({code.kind})",
    ]
    for device in build.device_memory:
        lines.append(
            f"           device {device.name} [{device.kind}] {device.description}: "
            f"{gib(device.total_bytes)} total, {gib(device.free_bytes)} free"
        )
    return lines


def hardware_text(hardware: Hardware) -> str:
    lines = cpu_lines(hardware.cpu)
    lines.append(
        f"RAM        {gib(hardware.ram_total_bytes)} total, "
        f"{gib(hardware.ram_available_bytes)} available"
    )
    lines += gpu_lines(hardware)
    lines += build_lines(hardware.build)
    lines += [f"note       {note}" for note in hardware.notes]
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable field names).")
@click.option(
    "--build/--no-build",
    "include_build",
    default=True,
    help="Inspect the installed llama-cpp-python (default: yes; --no-build is faster).",
)
@click.option("--measure", is_flag=True, help="Measure CPU memory bandwidth (cached per CPU).")
def hw(as_json: bool, include_build: bool, measure: bool) -> None:
    """Show CPU, RAM, GPUs and what the installed llama.cpp build can use."""
    hardware = services.detect_hardware(include_build=include_build, measure_bandwidth=measure)
    if as_json:
        click.echo(json.dumps(services.hardware_json(hardware), indent=2))
    else:
        click.echo(hardware_text(hardware))
