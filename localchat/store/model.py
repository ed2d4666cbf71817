"""A model on disk, and what the store asks of a model format to find one.

The store keeps a format's *name* as data (records, ``list``); everything that depends
on the format — which catalog repo holds it, which files of a snapshot make up a model,
what the engine opens — comes from the format objects the services hand in
(``engine.registry``), described here by ``StoreFormat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from localchat.catalog import CatalogEntry

Source = Literal["hub", "hf-cache", "pip", "path"]


@dataclass(frozen=True)
class LocalModel:
    """A model whose files are all on disk: what ``list`` shows and the engine opens.

    ``path`` is what the engine opens (the single file, a split's first part, or a
    checkpoint folder); ``files`` are all of them.  ``source``: pulled by localchat
    ("hub"), put in the HF cache by another tool ("hf-cache"), a pip package ("pip"), or
    a path the user ran ("path").
    """

    name: str
    format: str  # the model format's name (``engine.registry``)
    path: Path
    files: tuple[Path, ...]
    quant: str | None = None
    source: Source = "path"
    repo_id: str | None = None
    revision: str | None = None  # the commit the files came from
    last_used: float | None = None  # unix time
    declared_size_bytes: int | None = None  # the size to show while the files are not there

    @property
    def size_bytes(self) -> int:
        on_disk = [f for f in self.files if f.exists()]
        if not on_disk and self.declared_size_bytes is not None:
            return self.declared_size_bytes
        return sum(f.stat().st_size for f in on_disk)

    @property
    def key(self) -> str:
        """One key per model: ``owner/repo:QUANT``, ``pip:<name>`` or ``path:<abs path>``."""
        if self.repo_id:
            return f"{self.repo_id.lower()}:{(self.quant or self.format).upper()}"
        if self.source == "pip":
            return f"pip:{self.name}"
        return f"path:{self.path.resolve()}"

    def to_json(self) -> dict[str, Any]:
        """The ``localchat list --json`` document."""
        return {
            "name": self.name,
            "quant": self.quant,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "last_used": self.last_used,
            "path": str(self.path),
            "source": self.source,
            "repo_id": self.repo_id,
            "commit": self.revision,
            "files": [str(f) for f in self.files],
        }


@dataclass(frozen=True)
class FileGroup:
    """The files that make up one model, as paths inside a repo snapshot."""

    quant: str | None
    paths: tuple[str, ...]
    opens: str  # the path the engine opens; "" for the snapshot folder itself


class StoreFormat(Protocol):
    """What the store needs of a model format (``engine.registry.ModelFormat`` has it)."""

    @property
    def name(self) -> str: ...

    def catalog_repo(self, entry: CatalogEntry) -> tuple[str, str] | None:
        """(repo, revision) of this format's files for a catalog entry, or None."""
        ...

    def catalog_files(self, entry: CatalogEntry, quant: str | None) -> Sequence[FileGroup]:
        """The entry's file groups models.toml lists for ``quant`` (all, best first)."""
        ...

    def snapshot_models(self, snapshot: Path) -> Sequence[FileGroup]:
        """This format's models among a snapshot's files (another HF tool's download)."""
        ...
