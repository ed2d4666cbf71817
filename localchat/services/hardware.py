"""What this machine has, for ``localchat hw``, the app and the planner's callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localchat.hardware import (
    AmxStatus,
    CpuInfo,
    GpuInfo,
    Hardware,
    LlamaBuildInfo,
    detect_hardware,
)
from localchat.hardware.llama_build import ISA_FLAG_FOR_FEATURE, looks_native
from localchat.hardware.serialize import hardware_to_dict

__all__ = [
    "AmxStatus",
    "BuildCode",
    "CpuInfo",
    "GpuInfo",
    "Hardware",
    "LlamaBuildInfo",
    "build_code",
    "detect_hardware",
    "hardware_json",
]


@dataclass(frozen=True)
class BuildCode:
    """The CPU code the installed llama.cpp was compiled with."""

    isa: tuple[str, ...]  # its instruction-set extensions, e.g. ("AVX", "AVX2", "FMA")
    kind: str  # "native/tuned" (-march=native) or "portable"


def build_code(build: LlamaBuildInfo) -> BuildCode:
    isa = tuple(feature for feature in build.cpu_features if feature in ISA_FLAG_FOR_FEATURE)
    kind = "native/tuned" if looks_native(build.cpu_features) else "portable"
    return BuildCode(isa, kind)


def hardware_json(hardware: Hardware) -> dict[str, Any]:
    """The stable ``localchat hw --json`` document."""
    return hardware_to_dict(hardware)
