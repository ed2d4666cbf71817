"""The backend interface: load with a plan, stream chunks, read final stats, close.

Plain dataclasses only; nothing here imports a backend library, so the CLI,
the TUI and the tests can talk about generation without loading llama.cpp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class LoadSettings:
    """How to load one model file: what the planner decided, in llama.cpp's terms.

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


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class PromptSpec:
    """A rendered prompt and how generation must stop for its format."""

    text: str
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    has_bos: bool = False  # the text already starts with the BOS token's text
    render_special_tokens: bool = False  # show control tokens (e.g. Reflection's <thinking>)


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | cancelled


@dataclass
class LoadReport:
    """What llama.cpp actually did at load, read from its log."""

    load_s: float = 0.0
    buffers_bytes: dict[str, int] = field(default_factory=dict)
    n_gpu_layers_offloaded: int | None = None
    retries: list[str] = field(default_factory=list)
    log_text: str = ""


class Backend(Protocol):
    """One loaded model.  Implementations: ``engine.llama`` (llama-cpp-python)."""

    settings: LoadSettings
    load_report: LoadReport

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> Iterator[str]:
        """Yield text pieces as they are decoded.  Closing the iterator stops decoding."""
        ...

    @property
    def last_stats(self) -> GenerationStats: ...

    def count_tokens(self, text: str) -> int: ...

    def token_text(self, token_id: int) -> str: ...

    def close(self) -> None: ...
