"""Speed calibration: what ``localchat bench`` measured, kept per model, build and device.

Each bench stores the measured seconds-per-token terms (``SpeedTerms``) next to the
modelled ones for the same plan, in ``speed_calibration.json`` beside the memory
calibration file (same locked JSON store).  The planner then scales its modelled
terms by measured / modelled, preferring, in order: a bench of the same model with
the same settings, of the same model, of any model on this device and build.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from localchat.jsonfile import read_json, update_json
from localchat.paths import calibration_file
from localchat.planner.calibration import llama_cpp_version
from localchat.planner.speed import Calibration, SpeedTerms

SETTING_KEYS = (
    "n_gpu_layers",
    "n_cpu_moe",
    "n_threads",
    "n_threads_batch",
    "type_k",
    "type_v",
    "flash_attn",
)


def speed_calibration_file() -> Path:
    return calibration_file().with_name("speed_calibration.json")


def device_key(hardware: Any) -> str:
    """The machine as far as speed goes: the CPU and each GPU, by name."""
    gpus = ",".join(gpu.name for gpu in hardware.gpus)
    return f"{hardware.cpu.model_name}|{hardware.cpu.logical_cores}|{gpus}"


def settings_key(values: dict[str, Any]) -> dict[str, Any]:
    return {key: values.get(key) for key in SETTING_KEYS}


def record_bench(
    *,
    model: str,
    llama_version: str,
    device: str,
    settings: dict[str, Any],
    measured: SpeedTerms,
    modelled: SpeedTerms,
    results: dict[str, Any],
) -> dict[str, Any]:
    """Store one bench (``model`` is ``calibration.model_identity(path)``)."""
    record: dict[str, Any] = {
        "model": model,
        "llama_cpp_version": llama_version,
        "device": device,
        "settings": settings_key(settings),
        "measured": measured.to_json(),
        "modelled": modelled.to_json(),
        "results": results,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    key = "|".join([model, llama_version, device, repr(sorted(record["settings"].items()))])
    update_json(speed_calibration_file(), lambda records: records.__setitem__(key, record))
    return record


def find_calibration(
    *, model: str, llama_version: str, device: str, settings: dict[str, Any]
) -> Calibration | None:
    """Scales from the closest earlier bench on this device and build; None if none."""
    wanted = settings_key(settings)
    same_device = [
        record
        for record in read_json(speed_calibration_file()).values()
        if isinstance(record, dict)
        and record.get("device") == device
        and record.get("llama_cpp_version") == llama_version
        and _scales(record) is not None
    ]
    exact = [r for r in same_device if r.get("model") == model and r.get("settings") == wanted]
    same_model = [r for r in same_device if r.get("model") == model]
    for records, how in (
        (exact, "this model, same settings"),
        (same_model, "this model, other settings"),
        (same_device, "other models on this machine"),
    ):
        if not records:
            continue
        latest = max(records, key=lambda r: str(r.get("recorded_at", "")))
        scales = _median_scales(records) if records is same_device else _scales(latest)
        if scales is not None:  # a malformed record calibrates nothing
            return Calibration(
                scales=scales,
                source=f"measured: localchat bench ({how}, {latest.get('recorded_at', '?')})",
            )
    return None


def _scales(record: dict[str, Any]) -> SpeedTerms | None:
    try:
        measured = SpeedTerms.from_json(record["measured"])
        modelled = SpeedTerms.from_json(record["modelled"])
    except (KeyError, TypeError, ValueError):
        return None
    return measured.ratios(modelled)


def _median_scales(records: list[dict[str, Any]]) -> SpeedTerms | None:
    scales = [s for s in (_scales(r) for r in records) if s is not None]
    if not scales:
        return None
    return SpeedTerms(
        median(s.decode_base_s for s in scales),
        median(s.decode_per_kv_s for s in scales),
        median(s.prefill_base_s for s in scales),
        median(s.prefill_per_kv_s for s in scales),
    )


def model_key(info: Any) -> str:
    """A model file as the planner sees it: first file's name and the total size."""
    return f"{info.files[0]}:{info.file_bytes}" if info.files and info.file_bytes else ""


def lookup_for(hardware: Any, info: Any) -> Any:
    """The planner's calibration lookup for ``info`` on ``hardware`` (see ``search``)."""
    model = model_key(info)
    device = device_key(hardware)
    version = llama_cpp_version()

    def lookup(settings: Any, threads: Any) -> Calibration | None:
        values = {
            "n_gpu_layers": settings.n_gpu_layers,
            "n_cpu_moe": settings.n_cpu_moe,
            "n_threads": threads.n_threads,
            "n_threads_batch": threads.n_threads_batch,
            "type_k": settings.type_k,
            "type_v": settings.type_v,
            "flash_attn": settings.flash_attn,
        }
        return find_calibration(model=model, llama_version=version, device=device, settings=values)

    return lookup
