"""Checkpoint key names: AutoAWQ's legacy Mixtral layout, and the after-load check.

huozi3-awq (and other AutoAWQ Mixtral exports) store experts as
``model.layers.L.block_sparse_moe.experts.E.w1/w2/w3`` and the router as
``block_sparse_moe.gate``; transformers 5 / GPTQModel name them
``mlp.experts.E.gate_proj/down_proj/up_proj`` and ``mlp.gate``.  Loaded as they are,
the experts stay uninitialised (NaN logits), so the loader renames them explicitly.
Pure string work: no torch here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_LEGACY_EXPERT_RE = re.compile(r"\.block_sparse_moe\.experts\.(\d+)\.(w1|w2|w3)\.")
_LEGACY_GATE = ".block_sparse_moe.gate."
_EXPERT_PROJ = {"w1": "gate_proj", "w2": "down_proj", "w3": "up_proj"}
# state-dict entries a checkpoint need not hold: derived at load, or tied to the embeddings
_NOT_STORED_RE = re.compile(r"(rotary_emb\.inv_freq|\.g_idx)$")


def legacy_key_map(names: Iterable[str]) -> dict[str, str]:
    """checkpoint name -> transformers-5 name for every AutoAWQ legacy Mixtral key."""
    mapping: dict[str, str] = {}
    for name in names:
        new = _LEGACY_EXPERT_RE.sub(
            lambda m: f".mlp.experts.{m.group(1)}.{_EXPERT_PROJ[m.group(2)]}.", name
        )
        new = new.replace(_LEGACY_GATE, ".mlp.gate.")
        if new != name:
            mapping[name] = new
    return mapping


@dataclass(frozen=True)
class KeyCheck:
    missing: tuple[str, ...]  # in the model, not in the checkpoint
    unexpected: tuple[str, ...]  # in the checkpoint, not in the model

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self, limit: int = 3) -> str:
        parts = []
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected)):
            if names:
                shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
                parts.append(f"{len(names)} {label} ({shown})")
        return "; ".join(parts)


def check_keys(
    model_keys: Iterable[str],
    loaded_keys: Iterable[str],
    *,
    tied: Mapping[str, str] | None = None,
) -> KeyCheck:
    """Compare the model's state-dict names with the (renamed) names the checkpoint held.

    ``tied``: names filled by weight tying (``lm_head.weight`` -> ``model.embed_tokens.weight``),
    missing only if their source is missing too.
    """
    model_set, loaded_set = set(model_keys), set(loaded_keys)
    tied = dict(tied or {})
    missing = sorted(
        k
        for k in model_set - loaded_set
        if not _NOT_STORED_RE.search(k) and not (k in tied and tied[k] in loaded_set)
    )
    unexpected = sorted(loaded_set - model_set)
    return KeyCheck(tuple(missing), tuple(unexpected))
