"""AMD GPUs through ``rocm-smi`` when it is installed (not tested on real hardware here).

``rocm-smi --showmeminfo vram --showproductname --json`` prints, per card::

    {"card0": {"VRAM Total Memory (B)": "25753026560",
               "VRAM Total Used Memory (B)": "1022545920",
               "Card Series": "Radeon RX 7900 XTX", ...}}

Key spelling varies between ROCm releases, so keys are matched case-insensitively.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

from localchat.hardware.bandwidth import gpu_bandwidth_bytes_per_s
from localchat.hardware.types import GpuInfo

ROCM_SMI_QUERY = ["rocm-smi", "--showmeminfo", "vram", "--showproductname", "--json"]
ROCM_SMI_TIMEOUT_S = 15.0
_NAME_KEYS = ("card series", "card model", "device name", "card sku")


def _lookup(fields: dict[str, Any], wanted: str) -> Any:
    for key, value in fields.items():
        if key.strip().lower() == wanted:
            return value
    return None


def _card_name(fields: dict[str, Any], card: str) -> str:
    for key in _NAME_KEYS:
        value = _lookup(fields, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"AMD GPU {card}"


def parse_rocm_smi_json(text: str) -> tuple[GpuInfo, ...]:
    """GpuInfo per ``cardN`` entry that reports VRAM total and used bytes."""
    try:
        data = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(data, dict):
        return ()
    gpus = []
    for card, fields in data.items():
        match = re.fullmatch(r"card(\d+)", str(card))
        if match is None or not isinstance(fields, dict):
            continue
        try:
            total_bytes = int(_lookup(fields, "vram total memory (b)"))
            used_bytes = int(_lookup(fields, "vram total used memory (b)"))
        except (TypeError, ValueError):
            continue
        name = _card_name(fields, card)
        gpus.append(
            GpuInfo(
                index=int(match.group(1)),
                name=name,
                vendor="amd",
                total_bytes=total_bytes,
                free_bytes=max(total_bytes - used_bytes, 0),
                bandwidth_bytes_per_s=gpu_bandwidth_bytes_per_s(name, total_bytes),
                source="rocm-smi",
            )
        )
    return tuple(sorted(gpus, key=lambda gpu: gpu.index))


def detect_amd() -> tuple[GpuInfo, ...]:
    """AMD GPUs, or () when rocm-smi is absent or fails."""
    if shutil.which("rocm-smi") is None:
        return ()
    try:
        result = subprocess.run(
            ROCM_SMI_QUERY, capture_output=True, text=True, timeout=ROCM_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_rocm_smi_json(result.stdout) if result.returncode == 0 else ()
