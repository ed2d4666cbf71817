"""The planner's request and result: what the user asked for, and what to load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localchat.planner.memory import DeviceMemory

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

    def raise_if_not_fits(self) -> None:
        """``DoesNotFit`` with the planner's one-line reason when nothing fits."""
        if not self.fits:
            from localchat.errors import DoesNotFit

            why = next((r for r in self.reasons if "does not fit" in r), "not enough memory")
            raise DoesNotFit(
                f"{self.model}: {why}",
                hint="try a smaller quant or context, or see `localchat plan`",
            )

    @property
    def full_offload(self) -> bool:
        return self.n_gpu_layers >= self.n_layers + 1

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

    def to_json(self) -> dict[str, Any]:
        """The stable ``localchat plan --json`` document (see docs/fitting-table.md)."""
        return {
            "model": self.model,
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
                {**d.to_json(), "budget": self.budgets_bytes.get(d.device)} for d in self.devices
            ],
            "predicted_tok_s": round(self.predicted_tok_s, 2),
            "fits": self.fits,
            "source": self.source,
            "reasons": list(self.reasons),
            "alternatives": list(self.alternatives),
        }
