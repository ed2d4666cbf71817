"""Look up catalog/hub models in the Hugging Face cache (blobs + snapshots), offline.

First the records of what localchat pulled (``registry``), then, for files another
HF tool downloaded, the file lists models.toml gives under ``refs/<revision>``.
Which repo holds which format, and which files make a model, the formats say
(``store.model.StoreFormat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from localchat.paths import hf_cache_dir
from localchat.reference import ModelRef
from localchat.store.model import FileGroup, LocalModel, StoreFormat
from localchat.store.registry import PulledModel, find_pulled
from localchat.store.usage import last_used


def repo_folder(repo_id: str) -> str:
    """The cache folder's name for a model repo, as huggingface_hub names it
    (``repo_folder_name``: ``models--owner--name``)."""
    return "--".join(("models", *repo_id.split("/")))


def repo_dir(repo_id: str) -> Path:
    return hf_cache_dir() / repo_folder(repo_id)


def snapshot_file(repo_id: str, commit: str, path_in_repo: str) -> Path:
    return repo_dir(repo_id).joinpath("snapshots", commit, *path_in_repo.split("/"))


def wanted_repos(ref: ModelRef, formats: Sequence[StoreFormat]) -> list[str]:
    """The repos MODEL can come from: its own, or each format's repo in its catalog entry."""
    if ref.kind == "hub" and ref.repo_id:
        return [ref.repo_id]
    entry = ref.entry
    if entry is None:
        return []
    return [repo for fmt in formats if (repo := _catalog_repo(fmt, ref)) is not None]


def _catalog_repo(fmt: StoreFormat, ref: ModelRef) -> str | None:
    source = fmt.catalog_repo(ref.entry) if ref.entry is not None else None
    return source[0] if source is not None else None


def find_in_hf_cache(ref: ModelRef, formats: Sequence[StoreFormat]) -> LocalModel | None:
    """MODEL's files if all of them are in the cache.  Without a quant asked, the formats'
    order decides between records of several formats (the first format wins)."""
    repos = wanted_repos(ref, formats)
    if not repos:
        return None
    order = [fmt.name for fmt in formats]
    records = find_pulled(repos, ref.quant)
    if ref.quant is None:
        records.sort(key=lambda r: order.index(r.format) if r.format in order else len(order))
    for record in records:
        model = model_from_record(record)
        if model is not None:
            return model
    return _find_catalog_files(ref, formats)


def model_from_record(record: PulledModel) -> LocalModel | None:
    """The record's files as a LocalModel, or None if any of them is gone."""
    paths = tuple(snapshot_file(record.repo_id, record.commit, p) for p in record.files)
    if not paths or not all(p.exists() for p in paths):
        return None
    return LocalModel(
        name=record.name,
        format=record.format,
        path=_opened(record.repo_id, record.commit, record.opens),
        files=paths,
        quant=record.quant,
        source="hub",
        repo_id=record.repo_id,
        revision=record.commit,
        last_used=last_used(record.key),
    )


def _opened(repo_id: str, commit: str, opens: str) -> Path:
    snapshot = repo_dir(repo_id) / "snapshots" / commit
    return snapshot_file(repo_id, commit, opens) if opens else snapshot


def _find_catalog_files(ref: ModelRef, formats: Sequence[StoreFormat]) -> LocalModel | None:
    """A catalog model another HF tool downloaded: models.toml's file lists, found under the
    commit the cache's ``refs/<revision>`` names."""
    entry = ref.entry
    if entry is None:
        return None
    for fmt in formats:
        source = fmt.catalog_repo(entry)
        if source is None:
            continue
        repo, revision = source
        if ref.kind == "hub" and ref.repo_id and ref.repo_id.lower() != repo.lower():
            continue
        commit = _read_ref(repo, revision)
        found = _first_complete(fmt.catalog_files(entry, ref.quant), repo, commit)
        if found is not None:
            return LocalModel(
                name=entry.name,
                format=fmt.name,
                path=_opened(repo, found[0], found[1].opens),
                files=tuple(snapshot_file(repo, found[0], p) for p in found[1].paths),
                quant=found[1].quant,
                source="hub",
                repo_id=repo,
                revision=found[0],
            )
    return None


def _first_complete(
    groups: Sequence[FileGroup], repo: str, commit: str | None
) -> tuple[str, FileGroup] | None:
    if commit is None:
        return None
    for group in groups:
        if group.paths and all(snapshot_file(repo, commit, p).exists() for p in group.paths):
            return commit, group
    return None


def _read_ref(repo_id: str, revision: str) -> str | None:
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    try:
        return (repo_dir(repo_id) / "refs" / revision).read_text().strip() or None
    except OSError:
        return None
