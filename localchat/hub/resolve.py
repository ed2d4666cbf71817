"""The exact files of a hub repo that make up one model, by listing the repo.

The hub knows repos, commits, listings and downloads.  Which files of a listing make
up one quant of one model format (a single GGUF, llama.cpp splits, ``.partXofY`` pieces,
an AWQ checkpoint folder) is the format's knowledge (``engine.registry``): the services
hand ``resolve`` a ``Select`` that picks them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from localchat.errors import ModelNotFound
from localchat.hub.client import is_offline
from localchat.hub.listing import Listing, RemoteFile, fetch_listing

Layout = Literal["single", "split", "parts", "folder"]


@dataclass(frozen=True)
class HubSource:
    """Where a model comes from: a repo at a revision, and the name it goes by."""

    name: str  # catalog name or owner/repo, for records and ``list``
    repo_id: str
    revision: str  # what was asked for ("main", a tag, a commit)
    asked: str = ""  # MODEL as the user named it, for messages (default: ``name``)

    @property
    def label(self) -> str:
        return self.asked or self.name


@dataclass(frozen=True)
class Selection:
    """The files one model format picked from a listing for one quant."""

    format: str  # the format's name, kept in the record (``engine.registry``)
    quant: str | None
    layout: Layout  # "parts": pieces joined into ``local_paths[0]`` once downloaded
    files: tuple[RemoteFile, ...]
    local_paths: tuple[str, ...]  # paths inside the snapshot once pulled
    opens: str  # the snapshot path the engine opens; "" for the snapshot folder itself


Select = Callable[[Listing], Selection]  # a format's choice; ``ModelNotFound`` if none


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # catalog name or owner/repo, for messages and ``list``
    repo_id: str
    revision: str  # what was asked for
    commit: str
    quant: str | None
    format: str  # the format's name
    layout: Layout
    files: tuple[RemoteFile, ...]
    local_paths: tuple[str, ...]
    opens: str

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.quant}" if self.quant else self.name


def resolve(source: HubSource, select: Select, *, commit: str | None = None) -> ResolvedModel:
    """List the repo (at ``commit`` if pinned) and let ``select`` pick the files."""
    if is_offline():
        raise ModelNotFound(
            f"{source.label} is not on disk and HF_HUB_OFFLINE=1 is set",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    listing = fetch_listing(source.repo_id, commit or source.revision)
    chosen = select(listing)
    return ResolvedModel(
        name=source.name,
        repo_id=source.repo_id,
        revision=source.revision,
        commit=listing.commit,
        quant=chosen.quant,
        format=chosen.format,
        layout=chosen.layout,
        files=chosen.files,
        local_paths=chosen.local_paths,
        opens=chosen.opens,
    )
