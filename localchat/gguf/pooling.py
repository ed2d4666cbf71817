"""How an embedding model pools its hidden states: ``<arch>.pooling_type`` in GGUF metadata.

llama.cpp's ``enum llama_pooling_type``: 0 none (one vector per token), 1 mean, 2 cls
(the first token's), 3 last (the last token's), 4 rank (a reranker's score).  A file
without the key, or with "none", is a generative model: llama.cpp pools nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POOLING_NAMES: dict[int, str] = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
VECTOR_POOLINGS = frozenset({"mean", "cls", "last"})  # one vector per input
RERANK_POOLING = "rank"


def pooling_of(metadata: Mapping[str, Any]) -> str | None:
    """An embedding model's (or a reranker's) pooling: "mean", "cls", "last" or "rank";
    None for a generative model (no key, "none", or a type this code does not know)."""
    arch = metadata.get("general.architecture")
    value = metadata.get(f"{arch}.pooling_type") if isinstance(arch, str) else None
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    name = POOLING_NAMES.get(value)
    return name if name in VECTOR_POOLINGS or name == RERANK_POOLING else None
