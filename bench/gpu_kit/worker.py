"""The GPU check's child processes (``gpu_check.py --worker MODE --worker-args JSON``).

Each prints one JSON object.  These use localchat's internals where the CLI has no
equivalent, each named once here so a refactor has one place to follow:
``localchat.planner.plan_for_file`` (plan a file on this hardware),
``localchat.engine.open_backend`` (load a plan with the engine's out-of-memory back-off),
the backend's ``load_report`` (llama.cpp's log of that load, the retries made) and
``localchat.planner.calibration.parse_llama_log`` (buffer sizes per device).
localchat is imported inside each worker function: the checking process imports this
module too (``start_hog``) and must not load llama.cpp's libraries or start CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.gpu_kit.context import SCRIPT

GiB = 1 << 30
HOG_CHUNK_BYTES = 256 << 20
HOG_SLACK_BYTES = 64 << 20  # stop this close to the target: small blocks come from torch's cache


def main(mode: str, args: dict[str, Any]) -> int:
    handlers: dict[str, Callable[..., dict[str, Any]]] = {
        "gemma-path": gemma_path,
        "engine-load": engine_load,
        "hog": hog,
        "tiny-run": tiny_run,
        "awq-models": awq_models,
    }
    print(json.dumps(handlers[mode](**args)), flush=True)
    return 0


def gemma_path() -> dict[str, Any]:
    """The pip-delivered gemma-3-270m, assembled into LOCALCHAT_HOME (None if not installed)."""
    from localchat.catalog import load_catalog
    from localchat.store.local import pip_model_file

    entry = load_catalog().get("gemma-3-270m")
    if entry is None or entry.pip is None:
        return {"path": None, "why": "not in this catalog"}
    try:
        path = pip_model_file(entry.name, entry.pip)
    except Exception as exc:  # any failure means: no gemma here; say why
        return {"path": None, "why": f"{type(exc).__name__}: {exc}"}
    return {"path": str(path) if path else None, "why": "" if path else "not installed"}


def nvml_used_bytes(index: int = 0) -> int | None:
    """Memory in use on GPU ``index`` as NVML counts it (every process), or None."""
    try:
        import pynvml  # optional: NVIDIA machines only

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:  # no NVML: the NVML rows are skipped
        return None


def engine_load(
    model: str,
    n_ctx: int | None = None,
    n_gpu_layers: int | None = None,
    n_cpu_moe: int | None = None,
    squeeze_to: float | None = None,
) -> dict[str, Any]:
    """Plan ``model`` on this machine, load it, report llama.cpp's log of the load.

    ``squeeze_to``: after planning, take VRAM away until only that share of what the
    plan puts on GPU 0 (plus 1 GiB for this process's CUDA context) is free, so the
    plan is too optimistic and the engine must back off."""
    from localchat.engine import open_backend
    from localchat.errors import LocalchatError
    from localchat.hardware import detect_hardware
    from localchat.planner import PlanRequest, plan_for_file
    from localchat.planner.calibration import parse_llama_log

    request = PlanRequest(
        n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe, calibrate_speed=False
    )
    hardware = detect_hardware(include_build=True)
    plan = plan_for_file(Path(model), hardware, request=request, calibrate=False)
    result: dict[str, Any] = {"plan": plan.to_json(), "error": None}
    hog_process = None
    if squeeze_to is not None:
        gpu = plan.devices[0]
        leave_free = int(squeeze_to * (gpu.total_bytes - gpu.reserve_bytes)) + GiB
        hog_process = start_hog(leave_free)
        result["left_free_bytes"] = leave_free
    try:
        before = nvml_used_bytes()
        started = time.perf_counter()
        try:
            backend = open_backend(plan, Path(model))
        except LocalchatError as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            return result
        result["load_s"] = round(time.perf_counter() - started, 2)
        after = nvml_used_bytes()
        report = backend.load_report
        parsed = parse_llama_log(report.log_text)
        result.update(
            loaded=backend.settings.describe(),
            retries=list(report.retries),
            logged=parsed["devices"],
            offloaded_layers=parsed["offloaded_layers"],
            nvml_used_delta_bytes=None if before is None or after is None else after - before,
        )
        backend.close()
        return result
    finally:
        if hog_process is not None:
            stop_hog(hog_process)


def start_hog(leave_free_bytes: int) -> subprocess.Popen[str]:
    """A child that holds all but ``leave_free_bytes`` of GPU 0 until its stdin closes."""
    args = json.dumps({"leave_free_bytes": leave_free_bytes})
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--worker", "hog", "--worker-args", args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the hog says how much it left free, then waits
    if not line.startswith("{"):
        stop_hog(process)
        raise RuntimeError("the VRAM hog did not start (torch with CUDA needed)")
    return process


def stop_hog(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def hog(leave_free_bytes: int) -> dict[str, Any]:
    """Allocate GPU 0 with torch until about ``leave_free_bytes`` are free; print how much
    is free, then hold it until stdin closes (``start_hog``'s parent says when)."""
    import torch  # optional: the hog needs torch with CUDA

    blocks = []
    free, _total = torch.cuda.mem_get_info(0)
    while free - leave_free_bytes > HOG_SLACK_BYTES:
        size = min(HOG_CHUNK_BYTES, free - leave_free_bytes)
        blocks.append(torch.empty(size, dtype=torch.uint8, device="cuda:0"))
        free, _total = torch.cuda.mem_get_info(0)
    print(
        json.dumps({"free_bytes": free, "held_bytes": sum(b.numel() for b in blocks)}), flush=True
    )
    sys.stdin.read()
    return {"released": True}


def awq_models(root: str) -> dict[str, Any]:
    """The tiny AWQ Llama and the same model as GGUF Q4_0 under ``root`` (built if absent;
    ``tests/fixtures/awq_models.py`` trains and quantizes it: GPTQModel needed)."""
    from tests.fixtures.awq_models import build_tiny
    from tests.fixtures.tiny_gguf import write_tiny_gguf

    float_dir, awq_dir = build_tiny("llama", Path(root))
    gguf = Path(root) / "llama" / "tiny-llama-Q4_0.gguf"
    if not gguf.exists():
        write_tiny_gguf(float_dir, gguf, "Q4_0")
    return {"awq": str(awq_dir), "gguf": str(gguf)}


def tiny_run(kind: str, path: str, device: str, tokens: int = 64) -> dict[str, Any]:
    """Load a tiny model (AWQ folder on ``device``, or GGUF with every layer on the GPU
    when ``device`` is not "cpu") and decode ``tokens`` greedy tokens, timed."""
    from localchat.engine import load_backend
    from localchat.engine.settings import AwqSettings, LlamaSettings
    from localchat.types import PromptSpec, SamplingParams

    if kind == "awq":
        settings: Any = AwqSettings(Path(path), n_ctx=512, device=device)
    else:
        layers = 0 if device == "cpu" else 999
        settings = replace(LlamaSettings(Path(path), n_ctx=512), n_gpu_layers=layers)
    started = time.perf_counter()
    backend = load_backend(settings)
    load_s = time.perf_counter() - started
    on_gpu = _torch_gpu_bytes() if kind == "awq" else None
    _decode_past_the_end(backend)
    prompt = PromptSpec("<s><|user|>\nname a fruit</s>\n<|assistant|>\n", has_bos=True)
    sampling = SamplingParams(temperature=0.0, max_tokens=tokens)
    text = "".join(backend.stream(prompt, sampling))
    stats = backend.last_stats
    backend.close()
    return {
        "load_s": round(load_s, 3),
        "decode_tok_s": stats.decode_tokens_per_s,
        "completion_tokens": stats.completion_tokens,
        "text_head": text[:40],
        "torch_gpu_bytes": on_gpu,
    }


def _decode_past_the_end(backend: Any) -> None:
    """The tiny model answers in a few tokens; decode the full count for a steadier
    speed (bench/awq.py's one bench-only patch, on the backends' private stop checks)."""
    if hasattr(backend, "_end_ids"):
        backend._end_ids = set()
    if hasattr(backend, "_is_end"):
        backend._is_end = lambda token, stop_ids: False


def _torch_gpu_bytes() -> int | None:
    import torch  # optional: present wherever the AWQ backend loaded

    if torch.cuda.is_available():
        return int(torch.cuda.memory_allocated(0))
    if torch.backends.mps.is_available():
        return int(torch.mps.current_allocated_memory())
    return None
