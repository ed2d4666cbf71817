"""``localchat bench``: open MODEL as ``ask`` would (never downloading) and time it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from localchat.benchmark import BenchRequest, BenchResult, check_request, depth_for, measure
from localchat.engine import open_backend
from localchat.engine.registry import format_named
from localchat.errors import EngineError
from localchat.hardware import detect_hardware
from localchat.hardware.rpc import with_workers
from localchat.planner import PlanRequest
from localchat.services.pull import ensure_local
from localchat.services.resolve import resolve_model
from localchat.settings import load_settings

__all__ = ["BenchRequest", "BenchResult", "run_bench"]

Progress = Callable[[str], None]


def run_bench(request: BenchRequest, progress: Progress | None = None) -> BenchResult:
    """Plan, load and time MODEL; the result calibrates ``plan`` unless ``request.store``
    is False."""
    check_request(request)
    say = progress or (lambda _text: None)
    ref, _ = resolve_model(request.model)
    local = ensure_local(ref, allow_download=False)
    fmt = format_named(local.format)
    fmt.describe(local)  # the checks a load makes
    user = load_settings()
    rpc = request.rpc if request.rpc is not None else user.rpc
    hardware = with_workers(detect_hardware(include_build=True), rpc, request.link)
    threads = request.n_threads if request.n_threads is not None else user.threads
    plan_request = PlanRequest(
        n_ctx=request.n_ctx, n_gpu_layers=request.n_gpu_layers, n_threads=threads
    )
    before = fmt.plan(local, hardware, plan_request)
    before.raise_if_not_fits()
    modelled = fmt.plan(local, hardware, replace(plan_request, calibrate_speed=False)).speed
    if before.speed is None or modelled is None:
        raise EngineError(f"{ref.display_name}: its backend cannot be benchmarked")
    depth_for(before.n_ctx, request)  # a context too small for the tests: said before loading
    say(f"loading {local.path.name} ({before.n_gpu_layers} GPU layers, {before.n_threads} threads)")
    backend = open_backend(before, local.path)
    try:
        return measure(
            backend, model=ref.display_name, path=local.path, before=before,
            modelled=modelled.terms, request=request, hardware=hardware, say=say,
        )  # fmt: skip
    finally:
        backend.close()
