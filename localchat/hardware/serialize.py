"""``Hardware`` as JSON-ready dicts: the stable fields of ``localchat hw --json``.

Top level: ``cpu`` {model_name, physical_cores, logical_cores, features, arch,
bandwidth_bytes_per_s, bandwidth_source, amx {cpuid_advertises, os_enabled,
permitted, executes, usable, trap} or null}, ``ram_total_bytes``,
``ram_available_bytes``, ``gpus`` [{index, name, vendor, total_bytes, free_bytes,
bandwidth_bytes_per_s, source, compute_capability, driver_version}],
``unified_memory``, ``build`` {version, supports_gpu_offload, devices,
system_info, cpu_features, device_memory [{name, description, kind, free_bytes,
total_bytes}], library_dir, supports_rpc} or null, ``notes``, ``what_if``, ``remotes``
[{endpoint, index, total_bytes, free_bytes, link_bytes_per_s, link_latency_s,
bandwidth_bytes_per_s, loopback, source}] (RPC workers' devices),
``total_vram_free_bytes``.  Sizes in bytes, bandwidths in bytes/s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from localchat.hardware.types import AmxStatus, Hardware


def amx_to_dict(amx: AmxStatus | None) -> dict[str, Any] | None:
    if amx is None:
        return None
    return {**dataclasses.asdict(amx), "usable": amx.usable, "trap": amx.trap}


def hardware_to_dict(hardware: Hardware) -> dict[str, Any]:
    """All dataclass fields (tuples as lists) plus the derived AMX verdicts and VRAM sum."""
    data = dataclasses.asdict(hardware)
    data["cpu"]["amx"] = amx_to_dict(hardware.cpu.amx)
    data["total_vram_free_bytes"] = hardware.total_vram_free_bytes
    return data
