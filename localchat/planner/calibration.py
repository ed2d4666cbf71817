"""Learn from real loads: parse llama.cpp's buffer-size log lines and keep them.

After each load the engine calls :func:`record_load` with the captured log text.
We store, per (model file identity, load settings, llama-cpp-python version), the
measured buffer sizes next to what the planner predicted for the same settings,
in ``localchat.paths.calibration_file()`` (JSON, replaced atomically).  The planner
then scales its compute-buffer estimate for the same model, batch and attention
kind by the measured/predicted ratio (weights and KV are exact already).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from localchat.errors import LocalchatError
from localchat.gguf import read_gguf
from localchat.jsonfile import read_json, update_json
from localchat.paths import calibration_file
from localchat.planner.memory import MemorySettings, estimate_memory

MiB = 1 << 20
SCALE_MIN, SCALE_MAX = 0.5, 2.0
_SIZE = r"=\s*([\d.]+)\s*MiB"
_PATTERNS = {
    "model": re.compile(r"(\S+) model buffer size\s*" + _SIZE),
    "kv": re.compile(r"(\S+) KV buffer size\s*" + _SIZE),
    "compute": re.compile(r"(\S+) compute buffer size\s*" + _SIZE),
    "output": re.compile(r"(\S+)\s+output buffer size\s*" + _SIZE),
    "rs": re.compile(r"(\S+) RS buffer size\s*" + _SIZE),
}
_KV_SELF = re.compile(r"KV self size\s*" + _SIZE)  # older builds
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_CONTEXT_INT = re.compile(r"llama_context:\s+(n_ctx|n_batch|n_ubatch)\s+=\s+(\d+)")
_FLASH = re.compile(r"llama_context:\s+flash_attn\s+=\s+(\S+)")
_LOAD_START = "llama_model_loader: loaded meta data"


def buffer_device(buffer_name: str) -> str:
    """``CPU_Mapped``/``CPU_REPACK``/``CUDA_Host`` -> ``CPU``; ``CUDA0``/``MTL0_Mapped`` -> GPU."""
    if buffer_name.startswith("CPU") or buffer_name.endswith("_Host"):
        return "CPU"
    return buffer_name.removesuffix("_Mapped")


def parse_llama_log(text: str) -> dict[str, Any]:
    """Buffer sizes (bytes) of the last model load in a llama.cpp log.

    Returns ``{"model_buffers": {name: bytes}, "kv_buffers": ..., "compute_buffers": ...,
    "output_buffers": ..., "rs_buffers": ..., "devices": {device: {"weights", "kv",
    "compute"}}, "offloaded_layers", "total_layers", "n_ctx", "n_batch", "n_ubatch",
    "flash_attn"}``.  Sizes are the log's MiB (2 decimals) in bytes.
    """
    if _LOAD_START in text:
        text = text[text.rindex(_LOAD_START) :]
    result: dict[str, Any] = {f"{kind}_buffers": {} for kind in _PATTERNS}
    for kind, pattern in _PATTERNS.items():
        buffers = result[f"{kind}_buffers"]
        for name, mib in pattern.findall(text):
            buffers[name] = buffers.get(name, 0) + round(float(mib) * MiB)
    if not result["kv_buffers"]:
        for mib in _KV_SELF.findall(text):
            result["kv_buffers"]["KV"] = result["kv_buffers"].get("KV", 0) + round(float(mib) * MiB)
    offloaded = _OFFLOADED.findall(text)
    result["offloaded_layers"] = int(offloaded[-1][0]) if offloaded else None
    result["total_layers"] = int(offloaded[-1][1]) if offloaded else None
    for key, value in _CONTEXT_INT.findall(text):
        result.setdefault(key, int(value))
    flash = _FLASH.findall(text)
    result["flash_attn"] = flash[0] if flash else None
    result["devices"] = _device_totals(result)
    return result


def _device_totals(parsed: dict[str, Any]) -> dict[str, dict[str, int]]:
    devices: dict[str, dict[str, int]] = {}
    kinds = (
        ("model", "weights"),
        ("kv", "kv"),
        ("compute", "compute"),
        ("output", "compute"),
        ("rs", "kv"),
    )
    for kind, component in kinds:
        for name, size in parsed[f"{kind}_buffers"].items():
            device = "CPU" if name == "KV" else buffer_device(name)
            entry = devices.setdefault(device, {"weights": 0, "kv": 0, "compute": 0})
            entry[component] += size
    return devices


def model_identity(path: Path) -> str:
    """A cheap identity for a model file: name and size (no hashing of 40 GB)."""
    path = Path(path)
    return f"{path.name}:{path.stat().st_size}"


def llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return "unknown"


def _settings_key(settings: Any) -> dict[str, Any]:
    keep = ("n_ctx", "n_gpu_layers", "type_k", "type_v", "flash_attn", "n_batch", "n_ubatch")
    values = asdict(settings) if hasattr(settings, "__dataclass_fields__") else dict(settings)
    return {key: values.get(key) for key in keep}


def record_load(
    model_path: Path,
    settings: Any,
    log_text: str,
    *,
    llama_version: str | None = None,
) -> dict[str, Any] | None:
    """Store what llama.cpp allocated when loading ``model_path`` with ``settings``.

    ``settings`` is the ``LoadSettings`` used for the load; ``log_text`` the llama.cpp
    log captured during it (``llama_log_set``).  Returns the stored record, or None
    when the log has no buffer lines (nothing to learn).  Never raises for a bad
    calibration file: it is rewritten.
    """
    parsed = parse_llama_log(log_text)
    if not parsed["devices"]:
        return None
    key_settings = _settings_key(settings)
    version = llama_version or llama_cpp_version()
    record = {
        "model": model_identity(model_path),
        "llama_cpp_version": version,
        "settings": key_settings,
        "measured": parsed["devices"],
        "offloaded_layers": parsed["offloaded_layers"],
        "predicted": _predicted(model_path, key_settings, parsed),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    key = "|".join([record["model"], version, json.dumps(key_settings, sort_keys=True)])
    update_json(calibration_file(), lambda records: records.__setitem__(key, record))
    return record


def _predicted(
    model_path: Path, settings: dict[str, Any], parsed: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        info = read_gguf(Path(model_path))
        n_gpus = sum(1 for device in parsed["devices"] if device != "CPU")
        estimate = estimate_memory(
            info,
            MemorySettings(**{k: v for k, v in settings.items() if v is not None}),
            n_gpus=n_gpus,
        )
    except (LocalchatError, OSError, TypeError, ValueError):
        return None
    return {
        d.device: {"weights": d.weights_bytes, "kv": d.kv_bytes, "compute": d.compute_bytes}
        for d in estimate.devices
    }


def load_records(path: Path | None = None) -> dict[str, Any]:
    return read_json(path or calibration_file())


def compute_scale(
    identity: str, *, flash_attn: bool, n_ubatch: int, version: str | None = None
) -> float:
    """Measured/predicted compute-buffer ratio from earlier loads of the same model file,
    batch size, attention kind and llama-cpp-python version; 1.0 when none."""
    version = version or llama_cpp_version()
    ratios = []
    for record in load_records().values():
        settings = record.get("settings", {})
        if (
            record.get("model") != identity
            or record.get("llama_cpp_version") != version
            or settings.get("flash_attn") != flash_attn
            or settings.get("n_ubatch") != n_ubatch
            or not record.get("predicted")
        ):
            continue
        measured = sum(d.get("compute", 0) for d in record["measured"].values())
        predicted = sum(d.get("compute", 0) for d in record["predicted"].values())
        if measured > 0 and predicted > 0:
            ratios.append(measured / predicted)
    if not ratios:
        return 1.0
    return float(min(max(median(ratios), SCALE_MIN), SCALE_MAX))
