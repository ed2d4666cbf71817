"""Checks of what localchat sees and plans: the build, ``hw``, ``doctor``, and the plan
against llama.cpp's own log of the load and against NVML's used memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.gpu_kit.context import Kit, smi_gpus
from bench.gpu_kit.rows import (
    Row,
    expect,
    expect_true,
    info,
    skipped,
    within_mib,
    within_pct,
    within_range,
)
from bench.plan_accuracy import TARGETS  # the tolerances the CPU accuracy test holds

MiB = 1 << 20
FREE_TOLERANCE_MIB = 256  # free memory moves between two readings
LLAMA_TOTAL_TOLERANCE_PCT = 2.0  # cudaMemGetInfo's total vs NVML's


def build_rows(report: dict[str, Any] | None, kind: str) -> list[Row]:
    check = "llama-cpp-python build"
    if kind == "cpu":
        return [skipped(check, "GPU build", "no GPU")]
    if report is None:
        return [info(check, "build", "the installed one", "it offloads already")]
    return [
        info(check, "build time", f"{report['seconds']:.0f} s", report.get("cmake_args", "")),
        expect(check, f"GPU offload ({kind}) after the build", True, report["offload"]),
    ]


def hw_rows(kit: Kit) -> list[Row]:
    """``localchat hw --json`` against nvidia-smi (CUDA) or against itself (Metal)."""
    check = "hw: the GPU and its memory"
    if kit.kind == "cpu":
        return [skipped(check, "GPU", "no GPU")]
    doc = kit.localchat_json("hw")
    gpus, build = doc["gpus"], doc.get("build") or {}
    rows = [
        expect(check, "installed llama.cpp can offload", True, build.get("supports_gpu_offload"))
    ]
    if kit.kind == "metal":
        return [
            *rows,
            expect_true(check, "an Apple GPU found", bool(gpus), "≥ 1", str(len(gpus))),
            expect(check, "unified memory", True, doc.get("unified_memory")),
        ]
    smi = smi_gpus()
    rows.append(expect(check, "GPUs found (nvidia-smi)", len(smi), len(gpus)))
    llama_devices = [d for d in build.get("device_memory", []) if d.get("kind") != "cpu"]
    for ref, gpu in zip(smi, gpus, strict=False):
        label = f"GPU{ref.index} {ref.name}"
        rows.append(within_mib(check, f"{label} total", ref.total_mib * MiB, gpu["total_bytes"], 1))
        rows.append(
            within_mib(
                check, f"{label} free", ref.free_mib * MiB, gpu["free_bytes"], FREE_TOLERANCE_MIB
            )
        )
    for ref, device in zip(smi, llama_devices, strict=False):
        rows.append(
            within_pct(
                check,
                f"llama.cpp's {device.get('name')} total",
                ref.total_mib * MiB / 2**30,
                device["total_bytes"] / 2**30,
                LLAMA_TOTAL_TOLERANCE_PCT,
                " GiB",
            )
        )
    return rows


def doctor_rows(kit: Kit) -> list[Row]:
    check = "doctor"
    done = kit.localchat("doctor")
    lines = done.stdout.splitlines()
    problems = [line for line in lines if line.startswith("PROBLEM")]
    gpu_word = "offload to the GPU" if kit.kind == "cuda" else "uses Metal"
    exit_row = expect(
        check, "exit code (0: no problems)", 0, done.returncode, "; ".join(problems)[:120]
    )
    if kit.kind == "cpu":
        return [exit_row, skipped(check, "names the GPU build", "no GPU")]
    return [
        exit_row,
        expect_true(
            check,
            "names the GPU build",
            any(gpu_word in line for line in lines),
            f"a line '{gpu_word}'",
            next((line[:40] for line in lines if gpu_word in line), "none"),
        ),
    ]


def plan_log_rows(kit: Kit, label: str, model: Path) -> list[Row]:
    """The plan's bytes per device against llama.cpp's log of loading that plan, and the
    GPU's NVML used-memory growth against the plan's GPU buffers."""
    check = f"plan vs llama.cpp log: {label}"
    result = kit.worker("engine-load", model=str(model), n_ctx=4096)
    if result["error"]:
        return [Row(check, "load", "loads", "failed", "-", False, result["error"][:120])]
    plan = result["plan"]
    rows = device_rows(check, plan["devices"], result["logged"])
    rows.append(expect(check, "layers offloaded", plan["n_gpu_layers"], result["offloaded_layers"]))
    rows.append(nvml_row(check, plan["devices"][0], result.get("nvml_used_delta_bytes"), kit.kind))
    return rows


def device_rows(check: str, planned: list[dict[str, Any]], logged: dict[str, Any]) -> list[Row]:
    """Weights and KV within 1 MiB, compute within 10 %, total within 3 %, per device."""
    names = device_names(planned, logged)
    rows = []
    for device in planned:
        name, got = device["device"], logged.get(names.get(device["device"], ""))
        if got is None:
            rows.append(Row(check, name, "buffers", "none logged", "-", False))
            continue
        rows += [
            within_mib(check, f"{name} weights", device["weights"], got["weights"], TARGETS["weights_mib"]),
            within_mib(check, f"{name} KV", device["kv"], got["kv"], TARGETS["kv_mib"]),
            within_pct(
                check, f"{name} compute", device["compute"] / MiB, got["compute"] / MiB,
                TARGETS["compute_pct"], " MiB",
            ),
            within_pct(
                check, f"{name} total", _sum(device) / MiB, _sum(got) / MiB,
                TARGETS["total_pct"], " MiB",
            ),
        ]  # fmt: skip
    return rows


def device_names(planned: list[dict[str, Any]], logged: dict[str, Any]) -> dict[str, str]:
    """Plan device -> llama.cpp buffer device: GPU0, GPU1, ... -> the logged non-CPU devices
    in order (CUDA0, CUDA1 / MTL0 ...); CPU -> CPU."""
    gpus = sorted(name for name in logged if name != "CPU")
    planned_gpus = [d["device"] for d in planned if d["device"] != "CPU"]
    names = dict(zip(planned_gpus, gpus, strict=False))
    names["CPU"] = "CPU"
    return names


def nvml_row(check: str, gpu: dict[str, Any], delta_bytes: int | None, kind: str) -> Row:
    """NVML's used memory grows by the plan's GPU buffers plus the CUDA context, which
    must stay within the reserve the planner holds back."""
    name = "NVML used growth − plan's GPU buffers"
    if kind != "cuda" or gpu["device"] == "CPU":
        return skipped(check, name, "NVIDIA only")
    if delta_bytes is None:
        return skipped(check, name, "NVML not readable")
    buffers = _sum(gpu)
    return within_range(
        check,
        name,
        -0.01 * buffers / MiB,
        gpu["reserve"] / MiB,
        (delta_bytes - buffers) / MiB,
        " MiB",
    )


def _sum(device: dict[str, Any]) -> int:
    return int(device["weights"] + device["kv"] + device["compute"])
