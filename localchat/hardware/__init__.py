"""What the machine has: CPU, RAM, NVIDIA/Apple/AMD GPUs and the llama.cpp build.

Importing this package is cheap: pynvml and llama_cpp are imported only inside
the functions that need them.
"""

from localchat.hardware.detect import detect_hardware
from localchat.hardware.llama_build import detect_llama_build
from localchat.hardware.types import (
    AmxStatus,
    BackendDevice,
    CpuInfo,
    GpuInfo,
    Hardware,
    LlamaBuildInfo,
)

__all__ = [
    "AmxStatus",
    "BackendDevice",
    "CpuInfo",
    "GpuInfo",
    "Hardware",
    "LlamaBuildInfo",
    "detect_hardware",
    "detect_llama_build",
]
