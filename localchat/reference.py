"""Parse what the user typed after ``-m``: a catalog name, a hub repo, or a path.

Accepted forms::

    huozi3                      catalog name
    huozi3:q4_0                 catalog name with a quant
    bartowski/Repo-GGUF         hub repo (the planner picks the quant)
    bartowski/Repo-GGUF:Q4_K_M  hub repo with a quant
    hf.co/owner/repo:Q4_K_M     the same, Ollama style (also huggingface.co/...)
    ./model.gguf, /abs/x.gguf   a local file
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from localchat.catalog import Catalog, CatalogEntry
from localchat.errors import ModelNotFound

RefKind = Literal["catalog", "hub", "path"]

_HUB_PREFIXES = ("hf.co/", "huggingface.co/", "https://huggingface.co/", "https://hf.co/")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelRef:
    text: str
    kind: RefKind
    entry: CatalogEntry | None = None
    repo_id: str | None = None
    quant: str | None = None
    path: Path | None = None

    @property
    def display_name(self) -> str:
        base = self.entry.name if self.entry else self.repo_id or str(self.path)
        return f"{base}:{self.quant}" if self.quant else base


def parse_model_ref(text: str, catalog: Catalog) -> ModelRef:
    raw = text.strip()
    if not raw:
        raise ModelNotFound("empty model name", hint="see `localchat catalog` for names")
    if _looks_like_path(raw):
        return ModelRef(text=raw, kind="path", path=Path(raw).expanduser())
    for prefix in _HUB_PREFIXES:
        if raw.lower().startswith(prefix):
            return _hub_ref(raw, raw[len(prefix) :], catalog)
    name, quant = _split_quant(raw)
    entry = catalog.get(name)
    if entry is not None:
        return ModelRef(text=raw, kind="catalog", entry=entry, quant=quant)
    if _REPO_RE.match(name):
        return _hub_ref(raw, raw, catalog)
    raise ModelNotFound(
        f"unknown model {raw!r}",
        hint="use a catalog name (`localchat catalog`), owner/repo[:QUANT], or a path to a .gguf",
    )


def _hub_ref(raw: str, rest: str, catalog: Catalog | None = None) -> ModelRef:
    repo_id, quant = _split_quant(rest.strip("/"))
    if not _REPO_RE.match(repo_id):
        raise ModelNotFound(f"{raw!r} is not a hub reference", hint="write owner/repo[:QUANT]")
    entry = catalog.find_by_repo(repo_id) if catalog else None
    return ModelRef(text=raw, kind="hub", entry=entry, repo_id=repo_id, quant=quant)


def _split_quant(text: str) -> tuple[str, str | None]:
    if ":" in text:
        name, quant = text.rsplit(":", 1)
        return name, (quant or None)
    return text, None


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~")) or text.lower().endswith(".gguf"):
        return True
    return Path(text).exists() and not _REPO_RE.match(text)
