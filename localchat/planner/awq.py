"""Planning an AWQ checkpoint: the whole model on one device (CUDA GPU, Apple MPS or CPU).

transformers + GPTQModel do not split layers between GPU and CPU the way llama.cpp
does, so an AWQ plan is "fits one device whole, with this context" or not.  Weights
come from the safetensors headers (``localchat.safetensors``; floats counted at 2
bytes, as they run in fp16), the KV cache and activations from ``config.json``.
``choose_format`` decides between AWQ and GGUF for a model that has both.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from localchat.errors import ModelNotFound
from localchat.hardware.types import Hardware
from localchat.planner.budget import budgets_for
from localchat.planner.memory import DeviceMemory, GiB, MiB
from localchat.planner.plan import Plan, PlanRequest
from localchat.safetensors import CheckpointInfo

CUDA_CONTEXT_BYTES = 500 * MiB  # CUDA context + cuBLAS workspace torch allocates on first use
ALLOCATOR_SLACK = 0.10  # torch's caching allocator keeps freed blocks
PREFILL_CHUNK_TOKENS = 512  # engine.awq.backend prefills in chunks of this many tokens
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}  # bytes per element as stored
AWQ_INSTALL = 'pip install "localchat[awq]"'


@dataclass(frozen=True)
class ArchFromConfig:
    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_ctx_train: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ArchFromConfig:
        nested = config.get("text_config")
        text: dict[str, Any] = nested if isinstance(nested, dict) else config
        n_embd = int(text.get("hidden_size", 0))
        n_head = int(text.get("num_attention_heads", 1))
        return cls(
            n_layers=int(text.get("num_hidden_layers", 0)),
            n_embd=n_embd,
            n_ff=int(text.get("intermediate_size", 4 * n_embd)),
            n_head=n_head,
            n_head_kv=int(text.get("num_key_value_heads") or n_head),
            head_dim=int(text.get("head_dim") or n_embd // max(n_head, 1)),
            n_vocab=int(text.get("vocab_size", 0)),
            n_ctx_train=int(text.get("max_position_embeddings", 4096)),
        )


def weights_bytes(info: CheckpointInfo) -> int:
    """Bytes the weights take on the device: quantized ints as stored, floats as fp16."""
    total = 0
    for header in info.headers:
        for tensor in header.tensors.values():
            if tensor.dtype in FLOAT_DTYPES:
                total += tensor.data_bytes * 2 // FLOAT_DTYPES[tensor.dtype]
            else:
                total += tensor.data_bytes
    return total


def kv_bytes(arch: ArchFromConfig, n_ctx: int) -> int:
    """transformers' DynamicCache in fp16: K and V for every layer and position."""
    return 2 * arch.n_layers * arch.n_head_kv * arch.head_dim * n_ctx * 2


def activation_bytes(arch: ArchFromConfig, n_ctx: int, largest_linear_elements: int) -> int:
    """Peak working memory of one prefill chunk: hidden states, MLP, attention scores,
    and the fp16 copy a Torch AWQ kernel dequantizes for its largest linear layer."""
    tokens = min(PREFILL_CHUNK_TOKENS, n_ctx)
    hidden = 6 * tokens * arch.n_embd * 2
    mlp = 3 * tokens * arch.n_ff * 2
    scores = arch.n_head * tokens * n_ctx * 4  # fp32 scores against the whole cache
    logits = arch.n_vocab * 4
    return hidden + mlp + scores + logits + largest_linear_elements * 2


def largest_linear_elements(info: CheckpointInfo) -> int:
    """in x out of the biggest quantized linear (qweight packs 8 4-bit values per int32)."""
    best = 0
    for header in info.headers:
        for tensor in header.tensors.values():
            if tensor.name.endswith(".qweight") and len(tensor.shape) == 2:
                best = max(best, tensor.shape[0] * tensor.shape[1] * 8)
    return best


def awq_backend_installed() -> bool:
    """Whether ``localchat[awq]`` is installed (found, not imported: torch is slow to import)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "gptqmodel"))


@dataclass(frozen=True)
class _Target:
    device: str  # DeviceMemory name: "GPU0", "CPU"
    torch_device: str  # "cuda:0", "mps", "cpu"
    budget_bytes: int
    overhead_bytes: int


def _targets(hardware: Hardware) -> list[_Target]:
    """Where the whole model may go, in order of preference."""
    budgets = budgets_for(hardware)
    found = []
    nvidia = [(i, g) for i, g in enumerate(hardware.gpus) if g.vendor == "nvidia"]
    for i, _gpu in sorted(nvidia, key=lambda p: -budgets.gpu_usable_bytes(p[0])):
        usable = budgets.gpu_usable_bytes(i)
        found.append(_Target(f"GPU{i}", f"cuda:{i}", usable, CUDA_CONTEXT_BYTES))
    for i, gpu in enumerate(hardware.gpus):
        if gpu.vendor == "apple":
            usable = min(budgets.gpu_usable_bytes(i), budgets.ram_budget_bytes)
            found.append(_Target(f"GPU{i}", "mps", usable, 0))
    found.append(_Target("CPU", "cpu", budgets.ram_budget_bytes, 0))
    return found


@dataclass(frozen=True)
class AwqFigures:
    """What an AWQ plan needs: from shard headers, or models.toml's recorded figures."""

    name: str
    arch: ArchFromConfig
    weights_bytes: int
    largest_linear_elements: int
    files: tuple[str, ...]
    source: str  # "header", "remote header", "catalog figures"

    @classmethod
    def from_checkpoint(cls, info: CheckpointInfo) -> AwqFigures:
        return cls(
            name=info.name,
            arch=ArchFromConfig.from_config(info.config),
            weights_bytes=weights_bytes(info),
            largest_linear_elements=largest_linear_elements(info),
            files=info.shards,
            source=info.source,
        )

    @classmethod
    def from_catalog(cls, name: str, arch: Any, size_bytes: int) -> AwqFigures:
        """``arch``: the entry's ``ArchNumbers``; weights ~ the repo's recorded size."""
        numbers = ArchFromConfig(
            n_layers=arch.n_layers, n_embd=arch.n_embd, n_ff=arch.n_ff, n_head=arch.n_head,
            n_head_kv=arch.n_head_kv, head_dim=arch.head_dim, n_vocab=arch.n_vocab,
            n_ctx_train=arch.n_ctx_train,
        )  # fmt: skip
        largest = max(arch.n_ff * arch.n_embd, arch.n_vocab * arch.n_embd // 8)
        return cls(name, numbers, size_bytes, largest, (), "catalog figures")


ONE_SLOT_REASON = "AWQ: 1 slot (transformers runs one stream at a time; requests take turns)"


@dataclass
class AwqPlan(Plan):
    """A plan for an AWQ checkpoint: the whole model on one torch device."""

    torch_device: str = "cpu"  # "cuda:N", "mps" or "cpu"


def plan_awq(
    figures: AwqFigures,
    hardware: Hardware,
    request: PlanRequest | None = None,
    *,
    model_name: str = "",
) -> AwqPlan:
    """The first device (CUDA, then MPS, then CPU) that holds the whole model, with the
    largest context up to the request's; otherwise the least bad option, ``fits=False``."""
    request = request or PlanRequest()
    arch, weights, largest = figures.arch, figures.weights_bytes, figures.largest_linear_elements
    wanted_ctx = request.n_ctx or min(request.default_ctx, arch.n_ctx_train)
    contexts = [wanted_ctx]
    if request.n_ctx is None:
        while contexts[-1] // 2 >= request.min_ctx:
            contexts.append(contexts[-1] // 2)
    targets = _targets(hardware)
    reasons: list[str] = []
    chosen: tuple[_Target, int, DeviceMemory] | None = None
    for target in targets:
        chosen = _fit_on(target, weights, arch, contexts, largest)
        if chosen is not None:
            break
        smallest = _device_memory(target, weights, arch, contexts[-1], largest)
        reasons.append(
            f"AWQ: needs {smallest.total_bytes / GiB:.1f} GiB on {_where(target)}; "
            f"you have {target.budget_bytes / GiB:.1f} GiB: does not fit"
        )
    fits = chosen is not None
    if chosen is None:
        target = targets[-1]
        worst = _device_memory(target, weights, arch, contexts[-1], largest)
        chosen = (target, contexts[-1], worst)
    target, n_ctx, memory = chosen
    if fits:
        reasons.append(
            f"AWQ: fits {_where(target)} whole: {memory.total_bytes / GiB:.1f} of "
            f"{target.budget_bytes / GiB:.1f} GiB, context {n_ctx}"
        )
    slots_asked = request.parallel_auto or request.n_parallel > 1
    if slots_asked:
        reasons.append(ONE_SLOT_REASON)
    on_gpu = target.torch_device != "cpu"
    return AwqPlan(
        model=model_name or figures.name,
        quant="AWQ",
        files=figures.files,
        n_layers=arch.n_layers,
        n_gpu_layers=arch.n_layers + 1 if on_gpu else 0,
        n_ctx=n_ctx,
        type_k="f16",
        type_v="f16",
        flash_attn=False,
        n_batch=PREFILL_CHUNK_TOKENS,
        n_ubatch=PREFILL_CHUNK_TOKENS,
        devices=(memory,),
        budgets_bytes={target.device: target.budget_bytes},
        predicted_tok_s=_predicted_tok_s(hardware, target, weights),
        fits=fits,
        source=figures.source,
        reasons=reasons,
        format="awq",
        torch_device=target.torch_device,
        n_threads=request.n_threads,  # torch's CPU threads; None = torch's default
        parallel_reason=ONE_SLOT_REASON if slots_asked else "",
    )


def _fit_on(
    target: _Target, weights: int, arch: ArchFromConfig, contexts: list[int], largest: int
) -> tuple[_Target, int, DeviceMemory] | None:
    for n_ctx in contexts:
        memory = _device_memory(target, weights, arch, n_ctx, largest)
        if memory.total_bytes <= target.budget_bytes:
            return target, n_ctx, memory
    return None


def _device_memory(
    target: _Target, weights: int, arch: ArchFromConfig, n_ctx: int, largest: int
) -> DeviceMemory:
    compute = activation_bytes(arch, n_ctx, largest)
    kv = kv_bytes(arch, n_ctx)
    slack = int((weights + kv + compute) * ALLOCATOR_SLACK) if target.torch_device != "cpu" else 0
    return DeviceMemory(target.device, weights, kv, compute + slack, target.overhead_bytes)


def _where(target: _Target) -> str:
    if target.torch_device.startswith("cuda"):
        return f"one GPU ({target.device})"
    return "the Apple GPU" if target.torch_device == "mps" else "the CPU (RAM)"


def _predicted_tok_s(hardware: Hardware, target: _Target, weights: int) -> float:
    """Rough: decode reads every weight once per token; the Torch AWQ kernels (CPU, MPS)
    also dequantize them, which we count as reading them 4 times."""
    if target.torch_device.startswith("cuda"):
        gpu = hardware.gpus[int(target.torch_device.split(":")[1])]
        bandwidth, passes = gpu.bandwidth_bytes_per_s or 300e9, 1.5
    else:
        bandwidth, passes = hardware.cpu.bandwidth_bytes_per_s or 20e9, 4.0
    return bandwidth / max(weights * passes, 1)


def choose_format(awq: AwqPlan, gguf: Plan | None, *, backend_installed: bool) -> tuple[str, str]:
    """("awq" | "gguf", why) for a model that has both formats and no format was asked.

    AWQ only where it fits one CUDA GPU whole and its backend is installed: elsewhere
    llama.cpp runs the GGUF better (CPU, Metal) or can split it between GPU and RAM.
    """
    if not awq.torch_device.startswith("cuda") or not awq.fits:
        return "gguf", gguf_alternative_line(awq, gguf)
    if not backend_installed:
        return "gguf", (
            f"AWQ would fit {awq.devices[0].device} whole, but its backend is not installed "
            f"({AWQ_INSTALL}): {_gguf_text(gguf)}"
        )
    fits = next((r for r in awq.reasons if r.startswith("AWQ: fits")), "AWQ: fits")
    return "awq", f"{fits}, and the AWQ backend is installed: AWQ"


def gguf_alternative_line(awq: AwqPlan, gguf: Plan | None) -> str:
    """Why GGUF instead, e.g. "AWQ needs 25.1 GB on one GPU (GPU0); you have 24.0 GiB: Q4_0
    GGUF with 28/33 layers on GPU instead"."""
    gpu_line = next((r for r in awq.reasons if "one GPU" in r and "does not fit" in r), None)
    if gpu_line is not None:
        return f"{gpu_line.removesuffix(': does not fit')}: {_gguf_text(gguf)} instead"
    return f"no NVIDIA GPU to run AWQ on (it runs best there): {_gguf_text(gguf)}"


def _gguf_text(gguf: Plan | None) -> str:
    if gguf is None:
        return "GGUF"
    if gguf.n_gpu_layers <= 0:
        return f"{gguf.quant} GGUF on the CPU"
    on_gpu = min(gguf.n_gpu_layers, gguf.n_layers + 1)
    return f"{gguf.quant} GGUF with {on_gpu}/{gguf.n_layers + 1} layers on GPU"


def require_awq(info: CheckpointInfo) -> None:
    """A folder of safetensors is run only if its config says AWQ (``ModelNotFound`` else)."""
    if info.quant_method != "awq":
        raise ModelNotFound(
            f"{info.name} is not an AWQ checkpoint "
            f"(quantization_config.quant_method: {info.quant_method or 'none'})",
            hint="localchat runs GGUF files and AWQ safetensors checkpoints",
        )
