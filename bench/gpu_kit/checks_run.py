"""Checks that run models: ``ask`` and ``bench`` with full and partial offload, the
speed model before and after calibration, the out-of-memory back-off, the MoE expert
split, AWQ on the GPU, and slots (``bench/concurrency.py``) when it exists."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bench.gpu_kit.checks_device import device_rows
from bench.gpu_kit.context import ROOT, Kit
from bench.gpu_kit.rows import Row, expect, expect_true, info, skipped, within_pct
from bench.gpu_kit.worker import start_hog, stop_hog

CTX = "4096"
PROMPT = "Why is the sky blue? Answer in three sentences."
MODELLED_TOLERANCE_PCT = 35.0  # bench/speed.py's targets: before any bench
CALIBRATED_TOLERANCE_PCT = 15.0  # and after one
SQUEEZE_TO = 0.8  # the OOM check leaves 80 % of the planned GPU buffers free
MOE_GPU_SHARE = 0.7  # the MoE check leaves room for 70 % of the full-offload buffers


def speed_rows(kit: Kit, label: str, model: Path) -> list[Row]:
    """``ask`` with every layer on the GPU, ``bench`` (which calibrates ``plan``), and
    ``bench --ngl`` with half the layers: decode speeds and predictions."""
    check = f"ask / bench: {label}"
    before = kit.localchat_json("plan", str(model), "--ctx", CTX)
    all_layers = before["n_layers"] + 1 if kit.kind != "cpu" else 0
    ask = kit.localchat_json(
        "ask", "-m", str(model), "--ctx", CTX, "--max-tokens", "64", "--temperature", "0", PROMPT
    )
    rows = [
        expect(check, "ask: layers on GPU", all_layers, ask["plan"]["n_gpu_layers"]),
        info(check, "ask: decode tok/s", f"{ask['decode_tokens_per_s'] or 0:.1f}"),
    ]
    full = kit.localchat_json("bench", str(model), "--ctx", CTX, "-p", "256", "-n", "64", "-r", "2")
    deep, shallow = _tg(full, deep=True), _tg(full, deep=False)
    after = kit.localchat_json("plan", str(model), "--ctx", CTX)
    rows += [
        info(check, "bench: decode tok/s (empty cache)", f"{shallow:.1f}"),
        within_pct(
            check, "plan (modelled) vs bench decode", before["predicted_tok_s"], deep,
            MODELLED_TOLERANCE_PCT, " tok/s",
        ),
        expect_true(
            check, "plan uses the bench", "measured" in after.get("speed_source", ""),
            "measured: ...", after.get("speed_source", "")[:18],
        ),
        within_pct(
            check, "plan (calibrated) vs bench decode", after["predicted_tok_s"], deep,
            CALIBRATED_TOLERANCE_PCT, " tok/s",
        ),
    ]  # fmt: skip
    return rows + partial_rows(kit, check, model, all_layers, shallow)


def partial_rows(
    kit: Kit, check: str, model: Path, all_layers: int, full_tok_s: float
) -> list[Row]:
    if kit.kind == "cpu":
        return [skipped(check, "bench --ngl (partial offload)", "no GPU")]
    ngl = all_layers // 2
    part = kit.localchat_json(
        "bench", str(model), "--ctx", CTX, "--ngl", str(ngl), "-p", "64", "-n", "64", "-r", "1",
        "-d", "0", "--no-store",
    )  # fmt: skip
    part_tok_s = _tg(part, deep=False)
    return [
        expect(check, "bench --ngl: layers on GPU", ngl, part["settings"]["n_gpu_layers"]),
        expect_true(
            check, f"{ngl}/{all_layers} layers decode slower than all",
            part_tok_s < full_tok_s, f"< {full_tok_s:.1f} tok/s", f"{part_tok_s:.1f} tok/s",
        ),
    ]  # fmt: skip


def _tg(bench: dict[str, Any], *, deep: bool) -> float:
    """The decode test's mean tok/s: with the cache half full (``deep``) or empty."""
    tests = [t for t in bench["tests"] if t["test"].startswith("tg") and bool(t["depth"]) == deep]
    return float(tests[0]["tok_s_mean"]) if tests else 0.0


def oom_rows(kit: Kit) -> list[Row]:
    """Plan with the VRAM free now, then take VRAM away and load that plan: the engine
    must retry with fewer GPU layers (at most three times) and say so."""
    check = "OOM back-off (VRAM taken after planning)"
    if kit.kind != "cuda" or kit.dense is None:
        return [skipped(check, "retry with fewer layers", "CUDA only (a torch hog takes VRAM)")]
    result = kit.worker("engine-load", model=str(kit.dense), n_ctx=int(CTX), squeeze_to=SQUEEZE_TO)
    planned = result["plan"]["n_gpu_layers"]
    retries = result.get("retries") or []
    if result["error"]:
        return [
            Row(check, "load after retries", "loads", "failed", "-", False, result["error"][:120])
        ]
    loaded = result["loaded"]["n_gpu_layers"]
    return [
        expect_true(
            check, "the engine retried", bool(retries), "≥ 1 retry",
            f"{len(retries)}", retries[-1][:100] if retries else "",
        ),
        expect_true(check, "loaded with fewer layers", loaded < planned, f"< {planned}", str(loaded)),
        expect(check, "llama.cpp offloaded that many", loaded, result["offloaded_layers"]),
        expect_true(
            check, "says so", all("retrying with" in r for r in retries) and bool(retries),
            "'... retrying with N'", retries[0][:40] if retries else "nothing",
        ),
    ]  # fmt: skip


def moe_rows(kit: Kit) -> list[Row]:
    """The Mixtral-shaped file with less VRAM free than it needs whole (CUDA: a hog takes
    the rest): the planner should split the experts; buffers per device vs the plan.
    Without CUDA, the split is named (``n_cpu_moe``) and its buffers checked."""
    check = "MoE expert split (huozi3 shapes)"
    if kit.kind == "cpu" or kit.moe is None:
        return [skipped(check, "expert split", "no GPU to split against")]
    whole = kit.localchat_json("plan", str(kit.moe), "--ctx", CTX)
    n_layers = whole["n_layers"]
    if kit.kind == "cuda":
        gpu = whole["devices"][0]
        leave = gpu["reserve"] + int(MOE_GPU_SHARE * (gpu["total"] - gpu["reserve"]))
        hog = start_hog(leave)
        try:
            result = kit.worker("engine-load", model=str(kit.moe), n_ctx=int(CTX))
        finally:
            stop_hog(hog)
    else:
        split = {"n_gpu_layers": n_layers + 1, "n_cpu_moe": n_layers // 2}
        result = kit.worker("engine-load", model=str(kit.moe), n_ctx=int(CTX), **split)
    if result["error"]:
        return [Row(check, "load", "loads", "failed", "-", False, result["error"][:120])]
    plan = result["plan"]
    rows = [
        expect_true(
            check, "planned an expert split", plan["n_cpu_moe"] > 0 and plan["n_gpu_layers"] == n_layers + 1,
            f"{n_layers + 1} layers, experts of N in RAM",
            f"{plan['n_gpu_layers']} layers, experts of {plan['n_cpu_moe']}",
        ),
        expect(check, "layers offloaded", plan["n_gpu_layers"], result["offloaded_layers"]),
    ]  # fmt: skip
    return rows + device_rows(check, plan["devices"], result["logged"])


def awq_rows(kit: Kit) -> list[Row]:
    """The tiny AWQ Llama on the GPU (cuda:0, or mps) next to the same model as GGUF Q4_0."""
    check = "AWQ on the GPU (tiny checkpoints)"
    if kit.kind == "cpu":
        return [skipped(check, "AWQ", "no GPU")]
    if kit.awq_dir is None:
        return [skipped(check, "AWQ", "; ".join(kit.notes) or "no tiny AWQ checkpoints")]
    awq_dir = kit.awq_dir / "llama" / "awq"
    gguf = kit.awq_dir / "llama" / "tiny-llama-Q4_0.gguf"
    device = "cuda:0" if kit.kind == "cuda" else "mps"
    plan = kit.localchat_json("plan", str(awq_dir))
    awq = kit.worker("tiny-run", kind="awq", path=str(awq_dir), device=device)
    llama = kit.worker("tiny-run", kind="gguf", path=str(gguf), device=device)
    ratio = (awq["decode_tok_s"] or 0) / max(llama["decode_tok_s"] or 0, 1e-9)
    return [
        expect(check, "the planner puts it on", "GPU0", plan["devices"][0]["device"]),
        expect_true(
            check, f"weights on {device}", (awq["torch_gpu_bytes"] or 0) > 0, "> 0 bytes",
            f"{(awq['torch_gpu_bytes'] or 0) / 2**20:.1f} MiB",
        ),
        expect_true(check, "AWQ generates", awq["completion_tokens"] > 0, "> 0 tokens", str(awq["completion_tokens"])),
        info(check, "AWQ decode tok/s", f"{awq['decode_tok_s'] or 0:.1f}"),
        info(check, "GGUF Q4_0 decode tok/s (all on GPU)", f"{llama['decode_tok_s'] or 0:.1f}"),
        info(check, "AWQ / GGUF decode", f"{ratio:.2f}x"),
    ]  # fmt: skip


def slots_rows(kit: Kit) -> list[Row]:
    """``bench/concurrency.py`` (slots / continuous batching) when this tree has it."""
    check = "slots on the GPU"
    script = ROOT / "bench" / "concurrency.py"
    if not script.exists():
        return [skipped(check, "bench/concurrency.py", "not in this tree yet")]
    usage = kit.run([kit.python, str(script), "--help"], timeout_s=60).stdout
    args = [kit.python, str(script)]
    if "--model" in usage and kit.dense is not None:
        args += ["--model", str(kit.dense)]
    if "--quick" in usage:
        args.append("--quick")
    try:
        done = kit.run(args, timeout_s=240)
    except subprocess.TimeoutExpired:
        return [Row(check, "bench/concurrency.py", "exit 0", "timed out", "240 s", False)]
    last = (done.stdout.strip().splitlines() or [""])[-1][:100]
    return [expect(check, "bench/concurrency.py exit code", 0, done.returncode, last)]
