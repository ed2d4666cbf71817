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
    """How llama.cpp (llama-cpp-python) loads one GGUF.

    ``n_gpu_layers`` counts as llama.cpp does: ``n_layer + 1`` offloads
    everything, output layer included; 0 is CPU only.
    """

    model_path: Path
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int | None = None
    tensor_split: tuple[float, ...] | None = None
    use_mmap: bool = True

    def describe(self) -> dict[str, object]:
        return {"backend": "llama.cpp", "n_gpu_layers": self.n_gpu_layers, "n_ctx": self.n_ctx}


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
    )


BackendSettings = LlamaSettings  # a union as backends are added (AWQ, remote)
