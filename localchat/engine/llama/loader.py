"""Load a GGUF into llama.cpp as the settings say, backing off GPU layers on out-of-memory.

Builds llama.cpp's model and context parameters from ``LlamaSettings``: GPU layers, the
split over devices (RPC workers registered first), MoE experts kept in RAM, the
progress callback that makes the load abortable, and one context of ``n_parallel``
sequences sharing a unified KV cache of ``n_ctx`` cells.  llama.cpp's log of the load
is captured: it is the load report, and the planner's calibration reads it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from localchat.engine.interrupt import loads_cancelled, run_interruptibly
from localchat.engine.rpc import device_split, register_workers, registered_workers
from localchat.engine.settings import LlamaSettings
from localchat.errors import EngineError, Interrupted
from localchat.llamacpp import library
from localchat.llamacpp.context import ContextParams, LlamaContext
from localchat.llamacpp.model import LlamaModel, LoadFailed, ModelParams
from localchat.types import LoadReport

MAX_LOAD_RETRIES = 3
RetryLayers = Callable[[int], int | None]  # attempt (1..3) -> GPU layers to retry with, or None
_OOM_MARKERS = ("failed to allocate", "out of memory", "cudaMalloc failed", "unable to allocate")


@dataclass
class LoadedLlama:
    model: LlamaModel
    context: LlamaContext
    settings: LlamaSettings  # as finally loaded

    def close(self) -> None:
        self.context.close()
        self.model.close()


def load_with_backoff(
    settings: LlamaSettings, retry: RetryLayers | None, report: LoadReport
) -> LoadedLlama:
    """Load; when llama.cpp runs out of memory, offload fewer layers and retry (bounded).
    Fills ``report`` (time, retries, the load's log)."""
    log = library().log
    started = time.perf_counter()
    attempt_settings = settings
    for attempt in range(1, MAX_LOAD_RETRIES + 2):
        with log.capture() as log_lines:
            try:
                loaded = run_interruptibly(partial(_load, attempt_settings))
            except LoadFailed as exc:
                if loads_cancelled():
                    raise Interrupted("loading was cancelled") from exc
                log_text = "".join(log_lines)
                fewer = _fewer_layers(attempt_settings, attempt, log_text, retry)
                if fewer is None:
                    raise _load_error(settings, log_text) from exc
                report.retries.append(
                    f"load failed for memory with {attempt_settings.n_gpu_layers} GPU layers; "
                    f"retrying with {fewer.n_gpu_layers}"
                )
                attempt_settings = fewer
                continue
        report.load_s = time.perf_counter() - started
        report.log_text = "".join(log_lines)
        return loaded
    raise EngineError(
        f"could not load {settings.model_path.name} after {MAX_LOAD_RETRIES} retries",
        hint="try a smaller quant or --ctx",
    )


def _load(settings: LlamaSettings) -> LoadedLlama:
    native = library().native
    native.install_abort_handler()
    model = LlamaModel(native, settings.model_path, model_params(settings))
    try:
        context = LlamaContext(model, context_params(settings))
    except BaseException:
        model.close()
        raise
    return LoadedLlama(model, context, settings)


def model_params(settings: LlamaSettings) -> ModelParams:
    split = _device_split(settings)  # registers RPC workers first
    return ModelParams(
        n_gpu_layers=settings.n_gpu_layers,
        tensor_split=tuple(split or ()),
        cpu_tensor_patterns=expert_patterns(settings.n_cpu_moe),
        use_mmap=settings.use_mmap,
    )


def context_params(settings: LlamaSettings) -> ContextParams:
    cpus = os.cpu_count() or 1
    return ContextParams(
        n_ctx=settings.n_ctx,
        n_batch=settings.n_batch,
        n_ubatch=settings.n_ubatch,
        n_seq_max=settings.n_parallel,
        # unset: llama-cpp-python's defaults (half the logical CPUs to decode, all to batch)
        n_threads=settings.n_threads or max(cpus // 2, 1),
        n_threads_batch=settings.n_threads_batch or cpus,
        flash_attn=settings.flash_attn,
        type_k=settings.type_k,
        type_v=settings.type_v,
        kv_unified=True,
    )


def expert_patterns(n_cpu_moe: int) -> tuple[str, ...]:
    """Regexes for the expert tensors of layers ``0..n_cpu_moe-1`` (llama.cpp's --n-cpu-moe)."""
    return tuple(rf"blk\.{il}\.ffn_(up|down|gate)_exps" for il in range(max(n_cpu_moe, 0)))


def _device_split(settings: LlamaSettings) -> list[float] | None:
    """``tensor_split`` over llama.cpp's devices, after registering the RPC workers."""
    if not settings.rpc_servers and not registered_workers():
        return list(settings.tensor_split) if settings.tensor_split else None
    register_workers(settings.rpc_servers)
    return device_split(settings.rpc_servers, settings.tensor_split, registered_workers())


def _fewer_layers(
    settings: LlamaSettings, attempt: int, log_text: str, retry: RetryLayers | None
) -> LlamaSettings | None:
    """The settings to retry with after an out-of-memory load, or None if not memory."""
    lowered = log_text.lower()
    if settings.n_gpu_layers <= 0 or not any(m in lowered for m in _OOM_MARKERS):
        return None
    layers = retry(attempt) if retry is not None else None
    return None if layers is None else replace(settings, n_gpu_layers=layers)


def _load_error(settings: LlamaSettings, log_text: str) -> EngineError:
    name = settings.model_path.name
    last_error = next(
        (line.strip() for line in reversed(log_text.splitlines()) if "error" in line.lower()), ""
    )
    detail = f": {last_error}" if last_error else ""
    return EngineError(
        f"llama.cpp could not load {name}{detail}",
        hint="see the log with `localchat doctor`, or try a smaller --ctx",
    )
