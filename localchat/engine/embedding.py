"""Embeddings at the engine's seam: what a backend that makes vectors offers, an embedding
model's facts, and the settings llama.cpp loads one with.

- A model whose GGUF declares a pooling (``<arch>.pooling_type``: mean, cls, last) is an
  embedding model: the planner plans it as one (``planner.embedding``), the GGUF format
  hands it ``LlamaEmbedSettings``, and ``engine.llama.embed_backend`` loads it with an
  embedding context and nothing else.  It cannot chat.
- Its backend offers an ``Embedder`` through ``embedder()``; ``embedder_of`` asks for it
  and says why when a model has none: a reranker (rank pooling) scores pairs, and a
  generative model (no pooling) is not served for embeddings at all (as llama-server's
  OpenAI endpoint refuses it): llama.cpp would compute its full-vocabulary logits for
  every input token (an output buffer of n_vocab × tokens floats), and a chat model's
  hidden states are not trained as sentence embeddings.

Nothing here imports a backend library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from localchat.engine.settings import LlamaSettings, llama_settings
from localchat.errors import InvalidRequest
from localchat.gguf.pooling import RERANK_POOLING, pooling_of

if TYPE_CHECKING:
    from localchat.catalog import CatalogEntry
    from localchat.planner.plan import Plan

EMBEDDING_MODELS_HINT = "use an embedding model, e.g. nomic-embed-text-v1.5 (`localchat catalog`)"


class Embedder(Protocol):
    """Token lists in, one pooled vector each out (as the model makes it: not normalised)."""

    @property
    def dimensions(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The most tokens one input may have."""
        ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def pooling(self) -> str: ...

    def tokenize(self, text: str) -> list[int]:
        """``text``'s tokens with the model's special tokens (BERT's CLS and SEP, a BOS)."""
        ...

    def truncate(self, tokens: list[int]) -> list[int]:
        """The first ``max_tokens`` of ``tokens``, keeping an end token the tokenizer
        appended (SEP, EOS) last."""
        ...

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """One vector per input, in order; several inputs share each ``llama_decode``."""
        ...


@dataclass(frozen=True)
class EmbeddingFacts:
    """What ``show`` says about an embedding model."""

    pooling: str  # "mean", "cls", "last" or "rank"
    dimensions: int


def embedding_facts(metadata: Mapping[str, Any]) -> EmbeddingFacts | None:
    """An embedding model's facts from its GGUF metadata; None for a generative model."""
    pooling = pooling_of(metadata)
    if pooling is None:
        return None
    arch = metadata.get("general.architecture")
    size = metadata.get(f"{arch}.embedding_length")
    return EmbeddingFacts(pooling, size if isinstance(size, int) else 0)


def listed_embedding(entry: CatalogEntry | None) -> EmbeddingFacts | None:
    """A catalog entry's ``[embedding]`` facts (a model not on disk yet)."""
    spec = entry.embedding if entry is not None else None
    return EmbeddingFacts(spec.pooling, spec.dimensions) if spec is not None else None


def embedder_of(backend: object, model_name: str) -> Embedder:
    """The backend's embedder; ``InvalidRequest`` saying why a model makes none."""
    make = getattr(backend, "embedder", None)
    if make is None:
        raise InvalidRequest(
            f"{model_name} is not an embedding model: it has no pooling, so it makes no embeddings",
            hint=EMBEDDING_MODELS_HINT,
        )
    embedder: Embedder = make()
    return embedder


def refuse_reranker(model_name: str, pooling: str) -> None:
    """A reranker (rank pooling) answers a score per query/document pair, not a vector."""
    if pooling == RERANK_POOLING:
        raise InvalidRequest(
            f"{model_name} is a reranker (rank pooling): it scores pairs, it makes no embeddings",
            hint=EMBEDDING_MODELS_HINT,
        )


def not_a_chat_model(model_name: str) -> InvalidRequest:
    """The error for a chat or completion request to an embedding model."""
    return InvalidRequest(
        f"{model_name} is an embedding model: it makes vectors, not text",
        hint="send it to /v1/embeddings or /api/embed, or use `localchat embed`",
    )


@dataclass(frozen=True)
class LlamaEmbedSettings(LlamaSettings):
    """How llama.cpp loads an embedding model: ``n_ctx`` is the longest input, read whole
    in one batch (``n_batch``/``n_ubatch`` are the same size), with ``pooling``."""

    pooling: str = "mean"

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "pooling": self.pooling}


def llama_embed_settings(plan: Plan, model_path: Path) -> LlamaEmbedSettings:
    """llama.cpp load parameters for an embedding model's plan (``plan.pooling`` set)."""
    base = llama_settings(plan, model_path)
    values = {field.name: getattr(base, field.name) for field in fields(base)}
    return LlamaEmbedSettings(**values, pooling=plan.pooling or "mean")
