"""Each backend's load settings, built from the planner's ``Plan``.

Plain frozen dataclasses: nothing here imports a backend library.  One settings
class per backend; ``localchat.engine.load_backend`` picks the backend by the
settings' type, so the layers above the engine never name a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localchat.planner.plan import Plan


@dataclass(frozen=True)
class LlamaSettings:
    """How llama.cpp loads one GGUF.

    ``n_gpu_layers`` counts as llama.cpp does: ``n_layer + 1`` offloads
    everything, output layer included; 0 is CPU only.  ``n_ctx`` is the whole KV
    cache; ``n_parallel`` sequences (slots) share it, each holding at most
    ``n_ctx_per_seq`` tokens of prompt and reply, so together they never overflow it
    (the planner's rule: ``plan --parallel N`` sizes the cache as N such contexts).
    """

    model_path: Path
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int | None = None  # decode threads (None: llama-cpp-python's default)
    n_threads_batch: int | None = None  # prompt-processing threads
    tensor_split: tuple[float, ...] | None = None
    use_mmap: bool = True
    n_cpu_moe: int = 0  # MoE: expert tensors of layers 0..n_cpu_moe-1 stay in RAM (CPU buffer)
    # llama.cpp RPC workers ("host:port"), registered as devices before the local GPUs;
    # tensor_split then has one share per worker device, then one per local GPU
    rpc_servers: tuple[str, ...] = ()
    n_parallel: int = 1  # sequences decoded together (slots), each up to n_ctx_per_seq

    @property
    def n_ctx_per_seq(self) -> int:
        return self.n_ctx // max(self.n_parallel, 1)

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "backend": "llama.cpp",
            "n_gpu_layers": self.n_gpu_layers,
            "n_ctx": self.n_ctx,
        }
        if self.n_parallel > 1:
            described["n_parallel"] = self.n_parallel
            described["n_ctx_per_seq"] = self.n_ctx_per_seq
        if self.rpc_servers:
            described["rpc_servers"] = list(self.rpc_servers)
        return described


def llama_settings(plan: Plan, model_path: Path) -> LlamaSettings:
    """llama.cpp load parameters for a GGUF plan."""
    return LlamaSettings(
        model_path=Path(model_path),
        n_ctx=plan.n_ctx,
        n_gpu_layers=plan.n_gpu_layers,
        type_k=plan.type_k,
        type_v=plan.type_v,
        flash_attn=plan.flash_attn,
        n_batch=plan.n_batch,
        n_ubatch=plan.n_ubatch,
        tensor_split=plan.tensor_split,
        n_threads=plan.n_threads,
        n_threads_batch=plan.n_threads_batch,
        n_cpu_moe=plan.n_cpu_moe,
        rpc_servers=plan.rpc_servers,
        n_parallel=max(plan.n_parallel, 1),
    )


@dataclass(frozen=True)
class RemoteSettings:
    """An OpenAI-compatible server that runs the model (vLLM, llama-server, LM Studio,
    Ollama, another localchat).  ``model`` is the server's name for it ("" lets a
    localchat server pick its default, or takes the first model another server lists)."""

    base_url: str  # ends in /v1
    model: str = ""
    api_key: str | None = None
    n_ctx: int | None = None  # sent as ``num_ctx`` (localchat and Ollama honour it)
    is_localchat: bool = False  # a localchat server: load at open, errors mapped back
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0  # the longest wait for the next streamed chunk

    def describe(self) -> dict[str, object]:
        backend = "localchat server" if self.is_localchat else "remote engine"
        return {"backend": backend, "engine": self.base_url, "n_ctx": self.n_ctx}


@dataclass(frozen=True)
class AwqSettings:
    """How transformers + GPTQModel load one AWQ checkpoint folder, whole, on one device."""

    model_dir: Path
    n_ctx: int = 4096
    device: str = "cpu"  # "cpu", "cuda:N" or "mps"
    n_threads: int | None = None  # torch's CPU threads; None = torch's default

    def describe(self) -> dict[str, object]:
        backend = "transformers+gptqmodel (AWQ)"
        return {"backend": backend, "device": self.device, "n_ctx": self.n_ctx}


BackendSettings = LlamaSettings | RemoteSettings | AwqSettings
