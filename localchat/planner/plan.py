"""The planner's request and result: what the user asked for, and what to load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localchat.errors import DoesNotFit
from localchat.planner.memory import DeviceMemory
from localchat.planner.quality import QualityLoss

QUANTIZED_KV_TYPES = frozenset({"q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"})
MAX_LOAD_RETRIES = 3
JSON_FIELDS = (
    "model", "quant", "files", "n_layers", "n_gpu_layers", "n_ctx", "type_k", "type_v",
    "flash_attn", "devices", "predicted_tok_s", "reasons",
)  # fmt: skip


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for.  ``None`` means: let the planner choose."""

    n_ctx: int | None = None  # a fixed context; None = auto (default_ctx, shrunk to min_ctx)
    quant: str | None = None
    n_gpu_layers: int | None = None
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool | None = None  # None: on with GPU offload or a quantized V cache
    n_batch: int = 512
    n_ubatch: int = 512
    swa_full: bool = True  # llama.cpp's default: full-size cache for sliding-window layers
    target_tok_s: float = 10.0
    default_ctx: int = 8192
    min_ctx: int = 4096
    n_threads: int | None = None  # decode and batch threads; None = from the hardware
    n_parallel: int = 1  # sequences decoded together, each with n_ctx of context
    parallel_auto: bool = False  # choose n_parallel (planner.slots); n_parallel is ignored
    n_cpu_moe: int | None = None  # MoE: experts of the first N layers in RAM; None = choose
    n_prompt: int = 512  # prompt length the predicted time to first token is for
    calibrate_speed: bool = True  # use `localchat bench` results from this machine


@dataclass
class Plan:
    """A decision: which quant, how many layers on the GPU(s), which context, and why.

    ``devices`` lists each GPU then the CPU with bytes for weights, KV, compute and
    the reserve held back; ``fits`` is False when even the smallest option does not
    fit (the plan then shows the least bad option and the reasons say by how much).
    """

    model: str
    quant: str | None
    files: tuple[str, ...]
    n_layers: int
    n_gpu_layers: int
    n_ctx: int
    type_k: str
    type_v: str
    flash_attn: bool
    n_batch: int
    n_ubatch: int
    devices: tuple[DeviceMemory, ...]
    budgets_bytes: dict[str, int]
    predicted_tok_s: float
    fits: bool
    source: str  # "header", "remote header", "catalog figures"
    swa_full: bool = True
    tensor_split: tuple[float, ...] | None = None
    reasons: list[str] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)  # other quants considered
    n_threads: int | None = None  # decode threads (None: llama-cpp-python's default)
    n_threads_batch: int | None = None  # prompt-processing threads
    threads_source: str = ""
    n_parallel: int = 1
    parallel_reason: str = ""  # --parallel auto: why this many slots (also in reasons)
    n_cpu_moe: int = 0  # MoE expert split: experts of layers 0..n_cpu_moe-1 in RAM
    speed: Any = None  # planner.speed.SpeedPrediction: decode/prefill speeds and their source
    quality: QualityLoss | None = None  # the quant's expected loss (planner.quality); None: AWQ
    weights_bytes: int = 0  # the model's tensors as stored (0 where not known)
    chosen_by: str = ""  # quality | tie | fastest | requested | none (planner.search.Choice)
    format: str = "gguf"  # "gguf" (llama.cpp) or "awq" (transformers + GPTQModel, planner.awq)
    rpc_servers: tuple[str, ...] = ()  # RPC workers' endpoints, in llama.cpp's device order
    device_layers: dict[str, str] = field(default_factory=dict)  # device -> what it holds
    network: Any = None  # planner.network.NetworkCost when RPC workers take part
    pooling: str | None = None  # an embedding model's pooling ("mean", ...); None: generative

    def quant_rows(self) -> list[dict[str, Any]]:
        """Every quant weighed, best quality first, each as ``alternatives`` holds them,
        the chosen one with ``chosen: True`` (what ``plan`` and search's per-quant view show)."""
        chosen = {
            "quant": self.quant,
            "fits": self.fits,
            "n_gpu_layers": self.n_gpu_layers,
            "n_cpu_moe": self.n_cpu_moe,
            "n_ctx": self.n_ctx,
            "predicted_tok_s": self.predicted_tok_s,
            "weights": self.weights_bytes,
            "quality": self.quality.to_json() if self.quality is not None else None,
            "chosen": True,
        }
        rows = [chosen, *({**alt, "chosen": False} for alt in self.alternatives)]
        return sorted(
            rows, key=lambda r: (r["quality"] is None, (r["quality"] or {}).get("kld", 0))
        )

    def raise_if_not_fits(self, *, suggest_plan: bool = True) -> None:
        """``DoesNotFit`` with the planner's reason for the chosen quant when nothing fits.

        ``suggest_plan=False`` inside ``localchat plan`` (it is what the user just ran).
        """
        if self.fits:
            return
        mine = f"{self.quant}:"
        why = next(
            (r for r in self.reasons if r.startswith(mine) and "does not fit" in r),
            f"{self.quant}: not enough memory",
        )
        hint = "try a smaller quant or context"
        if suggest_plan:
            hint += ", or see what fits with `localchat plan MODEL`"
        raise DoesNotFit(f"{self.model}: {why}", hint=hint)

    @property
    def gpu_layers_text(self) -> str:
        return gpu_layers_text(self.n_gpu_layers, self.n_layers)

    @property
    def full_offload(self) -> bool:
        return self.n_gpu_layers >= self.n_layers + 1 and not self.n_cpu_moe

    def retry_gpu_layers(self, attempt: int) -> int | None:
        """GPU layers for retry ``attempt`` (1, 2, 3) after a load failed for lack of memory.

        Each attempt moves another tenth of the GPU layers (at least 2) to the CPU and
        keeps everything else; None once attempts are used up or nothing is left on a
        GPU.  The engine tells the user what changed (``n_gpu_layers`` old -> new).
        """
        if not 1 <= attempt <= MAX_LOAD_RETRIES or self.n_gpu_layers <= 0:
            return None
        step = max(2, -(-self.n_gpu_layers // 10))
        return max(self.n_gpu_layers - step * attempt, 0)

    def _speed_json(self) -> dict[str, Any]:
        if self.speed is None:
            return {}
        return {
            "predicted_prefill_tok_s": round(self.speed.prefill_tok_s, 2),
            "predicted_ttft_s": round(self.speed.ttft_s(self.speed.n_prompt), 4),
            "ttft_prompt_tokens": self.speed.n_prompt,
            "speed_source": self.speed.source,
        }

    def to_json(self) -> dict[str, Any]:
        """The stable ``localchat plan --json`` document (see docs/fitting-table.md)."""
        return {
            "model": self.model,
            "format": self.format,
            "quant": self.quant,
            "files": list(self.files),
            "n_layers": self.n_layers,
            "n_gpu_layers": self.n_gpu_layers,
            "n_ctx": self.n_ctx,
            "type_k": self.type_k,
            "type_v": self.type_v,
            "flash_attn": self.flash_attn,
            "n_batch": self.n_batch,
            "n_ubatch": self.n_ubatch,
            "tensor_split": list(self.tensor_split) if self.tensor_split else None,
            "devices": [
                {
                    **d.to_json(),
                    "budget": self.budgets_bytes.get(d.device),
                    "holds": self.device_layers.get(d.device, ""),
                }
                for d in self.devices
            ],
            "rpc_servers": list(self.rpc_servers),
            "network": self.network.to_json() if self.network is not None else None,
            "weights": self.weights_bytes,
            "predicted_tok_s": round(self.predicted_tok_s, 2),
            **self._speed_json(),
            "quality": self.quality.to_json() if self.quality is not None else None,
            "chosen_by": self.chosen_by,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch,
            "threads_source": self.threads_source,
            "n_parallel": self.n_parallel,
            "parallel_reason": self.parallel_reason,
            "n_cpu_moe": self.n_cpu_moe,
            "fits": self.fits,
            "source": self.source,
            "pooling": self.pooling,
            "reasons": list(self.reasons),
            "alternatives": list(self.alternatives),
        }


def gpu_layers_text(n_gpu_layers: int, n_layers: int) -> str:
    """Layers on the GPU out of all of them ("12/33"), counted as llama.cpp counts them
    (``n_layers`` blocks + the output layer).  The CLI and the app both show this."""
    return f"{n_gpu_layers}/{n_layers + 1}"
