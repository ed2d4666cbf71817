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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from localchat.catalog import Catalog, CatalogEntry
from localchat.errors import InvalidRequest, ModelNotFound

RefKind = Literal["catalog", "hub", "path"]

_HUB_PREFIXES = ("hf.co/", "huggingface.co/", "https://huggingface.co/", "https://hf.co/")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_QUANT_CHARS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}$")


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


def parse_model_ref(text: str, catalog: Catalog, *, allow_paths: bool = True) -> ModelRef:
    """MODEL as a ``ModelRef``.  ``allow_paths=False`` (names from the network) refuses
    anything path-like by its spelling alone, without touching the file system."""
    raw = text.strip()
    if not raw:
        raise ModelNotFound("empty model name", hint="see `localchat catalog` for names")
    if not allow_paths:
        _refuse_path_like(raw)
    elif _looks_like_path(raw):
        return ModelRef(text=raw, kind="path", path=Path(raw).expanduser())
    for prefix in _HUB_PREFIXES:
        if raw.lower().startswith(prefix):
            return _hub_ref(raw, raw[len(prefix) :], catalog)
    name, quant = _split_quant(raw)
    entry = catalog.get(name)
    if entry is not None:
        return ModelRef(text=raw, kind="catalog", entry=entry, quant=_known_quant(entry, quant))
    if _REPO_RE.match(name):
        return _hub_ref(raw, raw, catalog)
    raise ModelNotFound(
        f"unknown model {raw[:80]!r}",
        hint="use a catalog name (`localchat catalog`), owner/repo[:QUANT], or a path to a .gguf",
    )


def _hub_ref(raw: str, rest: str, catalog: Catalog | None = None) -> ModelRef:
    repo_id, quant = _split_quant(rest.strip("/"))
    if not _REPO_RE.match(repo_id) or not _valid_repo_id(repo_id):
        raise ModelNotFound(f"{raw[:80]!r} is not a hub reference", hint="write owner/repo[:QUANT]")
    entry = catalog.find_by_repo(repo_id) if catalog else None
    return ModelRef(text=raw, kind="hub", entry=entry, repo_id=repo_id, quant=quant)


def with_quant(ref: ModelRef, quant: str) -> ModelRef:
    """``ref`` asking for ``quant`` instead, checked as ``parse_model_ref`` checks it."""
    checked: str | None = _checked_quant(quant)
    if ref.entry is not None and ref.kind == "catalog":
        checked = _known_quant(ref.entry, checked)
    return replace(ref, quant=checked)


def _known_quant(entry: CatalogEntry, quant: str | None) -> str | None:
    """``quant`` when the entry names it (in any case), else ``ModelNotFound`` naming the
    quants it has: a catalog name means exactly the quants models.toml lists for it, for
    every command alike.  (``owner/repo:QUANT`` is checked against the repo's files.)"""
    if quant is None:
        return None
    names = entry.quant_names()
    if all(name.upper() != quant.upper() for name in names):
        raise ModelNotFound(f"{entry.name} has no quant {quant}", hint=f"it has {', '.join(names)}")
    return quant


def _split_quant(text: str) -> tuple[str, str | None]:
    if ":" in text:
        name, quant = text.rsplit(":", 1)
        return name, _checked_quant(quant) if quant else None
    return text, None


def _checked_quant(quant: str) -> str:
    """A quant, or a file stem naming one (``owner/repo:Model-Q4_K_M``), never a path."""
    if not _QUANT_CHARS_RE.match(quant) or ".." in quant:
        raise ModelNotFound(
            f"{quant[:80]!r} is not a quant name",
            hint="write MODEL:QUANT with a quant such as Q4_K_M; `localchat catalog` lists them",
        )
    return quant


def _valid_repo_id(repo_id: str) -> bool:
    """huggingface_hub's own rules (96 characters, no ``..`` or ``--``, ...)."""
    # huggingface_hub takes 0.2 s to import: only for a name that looks like owner/repo
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~")) or text.lower().endswith(".gguf"):
        return True
    try:
        return Path(text).exists() and not _REPO_RE.match(text)
    except OSError:  # e.g. a 5000-character name: too long to be a file name
        return False


_NAME_CHARS_RE = re.compile(r"^[\w.\-/:]+$")


def _refuse_path_like(text: str) -> None:
    path_like = (
        text.startswith(("/", ".", "~"))
        or ".." in text
        or text.lower().endswith(".gguf")
        or not _NAME_CHARS_RE.match(text)
    )
    if path_like:
        raise InvalidRequest(
            f"{text[:80]!r} is not a model name",
            hint="use a catalog name or owner/repo[:QUANT]; paths are not accepted here",
        )
