"""NVIDIA GPUs: NVML (the ``nvidia-ml-py`` package, module ``pynvml``), else ``nvidia-smi``.

Memory read through NVML before CUDA is initialised does not include the
300-500 MiB that the CUDA context will take per GPU; the planner reserves that.
Also: whether an NVIDIA card is on the PCI bus at all, so that ``doctor`` can
tell "no GPU" from "GPU but no driver".
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localchat.hardware.bandwidth import gpu_bandwidth_bytes_per_s
from localchat.hardware.types import GpuInfo

MIB = 1024 * 1024
NVIDIA_PCI_VENDOR = "0x10de"
PCI_DISPLAY_CLASS_PREFIX = "0x03"  # 0x0300 VGA, 0x0302 3D controller
SYS_PCI_DEVICES = Path("/sys/bus/pci/devices")
PROC_DRIVER_NVIDIA = Path("/proc/driver/nvidia/version")
NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,memory.free,memory.used",
    "--format=csv,noheader,nounits",
]
NVIDIA_SMI_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class NvidiaScan:
    """What we learned about NVIDIA GPUs, and why the list may be empty."""

    gpus: tuple[GpuInfo, ...] = ()
    driver_found: bool = False  # NVML or nvidia-smi answered
    problem: str = ""  # e.g. "NVML library not found (no NVIDIA driver)"
    notes: tuple[str, ...] = field(default=())


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def make_gpu(
    index: int,
    name: str,
    total_bytes: int,
    free_bytes: int,
    source: str,
    compute_capability: str = "",
    driver_version: str = "",
) -> GpuInfo:
    return GpuInfo(
        index=index,
        name=name,
        vendor="nvidia",
        total_bytes=total_bytes,
        free_bytes=free_bytes,
        bandwidth_bytes_per_s=gpu_bandwidth_bytes_per_s(name, total_bytes),
        source=source,
        compute_capability=compute_capability,
        driver_version=driver_version,
    )


def _nvml_gpu(nvml: Any, index: int, driver_version: str) -> GpuInfo:
    """One GPU through NVML; ``nvml`` is the lazily imported ``pynvml`` module."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        capability = f"{major}.{minor}"
    except nvml.NVMLError:
        capability = ""
    return make_gpu(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        total_bytes=int(memory.total),
        free_bytes=int(memory.free),
        source="nvml",
        compute_capability=capability,
        driver_version=driver_version,
    )


def scan_nvml() -> NvidiaScan | None:
    """GPUs through NVML; None when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvidiaScan(problem=_nvml_init_problem(pynvml, exc))
    try:
        driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        count = pynvml.nvmlDeviceGetCount()
        gpus = tuple(_nvml_gpu(pynvml, index, driver_version) for index in range(count))
    except pynvml.NVMLError as exc:
        return NvidiaScan(driver_found=True, problem=f"NVML error: {exc}")
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return NvidiaScan(gpus=gpus, driver_found=True)


def _nvml_init_problem(pynvml: Any, exc: Exception) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12):
        return "NVML library not found (no NVIDIA driver installed)"
    if code == getattr(pynvml, "NVML_ERROR_DRIVER_NOT_LOADED", 9):
        return "NVIDIA driver not loaded"
    if code == getattr(pynvml, "NVML_ERROR_NO_PERMISSION", 4):
        return "no permission to query the NVIDIA driver"
    return f"NVML init failed: {exc}"


def parse_nvidia_smi_csv(text: str, driver_version: str = "") -> tuple[GpuInfo, ...]:
    """Rows of ``index, name, total MiB, free MiB, used MiB`` (nounits) -> GpuInfo."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            index, total_mib, free_mib = int(parts[0]), int(parts[2]), int(parts[3])
        except ValueError:
            continue  # "[N/A]" or a header
        gpus.append(
            make_gpu(index, parts[1], total_mib * MIB, free_mib * MIB, "nvidia-smi", "", "")
        )
    return tuple(gpus)


def scan_nvidia_smi() -> NvidiaScan | None:
    """GPUs through ``nvidia-smi``; None when the tool is not on PATH."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        result = subprocess.run(
            NVIDIA_SMI_QUERY,
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return NvidiaScan(problem=f"nvidia-smi failed: {exc}")
    if result.returncode != 0:
        message = (result.stdout + result.stderr).strip().splitlines()
        return NvidiaScan(problem=f"nvidia-smi failed: {message[0] if message else 'no output'}")
    return NvidiaScan(gpus=parse_nvidia_smi_csv(result.stdout), driver_found=True)


def detect_nvidia() -> NvidiaScan:
    """NVML first; ``nvidia-smi`` when NVML is missing or failed."""
    nvml = scan_nvml()
    if nvml is not None and nvml.driver_found and nvml.gpus:
        return nvml
    smi = scan_nvidia_smi()
    if smi is not None and smi.gpus:
        note = "NVIDIA GPUs read with nvidia-smi (NVML unavailable)"
        return NvidiaScan(gpus=smi.gpus, driver_found=True, notes=(note,))
    if nvml is not None:
        return nvml
    if smi is not None:
        return smi
    return NvidiaScan(problem="nvidia-ml-py not installed and nvidia-smi not found")


def nvidia_pci_devices(pci_root: Path = SYS_PCI_DEVICES) -> tuple[str, ...]:
    """PCI addresses of NVIDIA display/3D controllers, driver or not (Linux sysfs)."""
    found = []
    try:
        devices = sorted(pci_root.iterdir())
    except OSError:
        return ()
    for device in devices:
        try:
            vendor = (device / "vendor").read_text().strip().lower()
            pci_class = (device / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == NVIDIA_PCI_VENDOR and pci_class.startswith(PCI_DISPLAY_CLASS_PREFIX):
            found.append(device.name)
    return tuple(found)


def nvidia_hardware_present() -> bool:
    """An NVIDIA GPU is on the bus (sysfs) or its kernel driver is loaded (/proc)."""
    return bool(nvidia_pci_devices()) or PROC_DRIVER_NVIDIA.exists()
