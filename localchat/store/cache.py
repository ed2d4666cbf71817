"""Look up catalog/hub models in the Hugging Face cache (blobs + snapshots), offline.

First the records of what localchat pulled (``registry``), then, for files another
HF tool downloaded, the catalog's file list under ``refs/<revision>``.
"""

from __future__ import annotations

from pathlib import Path

from localchat.gguf.quants import PARTS_RE, quality_rank
from localchat.paths import hf_cache_dir
from localchat.reference import ModelRef
from localchat.store.local import LocalModel
from localchat.store.registry import PulledModel, find_pulled


def repo_dir(repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return hf_cache_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")


def snapshot_file(repo_id: str, commit: str, path_in_repo: str) -> Path:
    return repo_dir(repo_id).joinpath("snapshots", commit, *path_in_repo.split("/"))


def wanted_repos(ref: ModelRef) -> list[str]:
    if ref.kind == "hub" and ref.repo_id:
        return [ref.repo_id]
    entry = ref.entry
    if entry is None:
        return []
    return [source.repo for source in (entry.gguf, entry.awq) if source is not None]


def find_in_hf_cache(ref: ModelRef) -> LocalModel | None:
    repos = wanted_repos(ref)
    if not repos:
        return None
    records = find_pulled(repos, ref.quant)
    if ref.quant is None and any(r.format == "gguf" for r in records):
        records = [r for r in records if r.format == "gguf"]
    for record in records:
        model = model_from_record(record)
        if model is not None:
            return model
    return _find_catalog_files(ref)


def model_from_record(record: PulledModel) -> LocalModel | None:
    """The record's files as a LocalModel, or None if any of them is gone."""
    paths = tuple(snapshot_file(record.repo_id, record.commit, p) for p in record.files)
    if not paths or not all(p.exists() for p in paths):
        return None
    path = paths[0].parent if record.format == "awq" else paths[0]
    return LocalModel(
        name=record.name,
        path=path,
        files=paths,
        quant=record.quant,
        repo_id=record.repo_id,
        revision=record.commit,
        format=record.format,
        extra={"source": "hub"},
    )


def _find_catalog_files(ref: ModelRef) -> LocalModel | None:
    entry = ref.entry
    if entry is None or entry.gguf is None:
        return None
    source = entry.gguf
    if ref.kind == "hub" and ref.repo_id and ref.repo_id.lower() != source.repo.lower():
        return None
    commit = _read_ref(source.repo, source.revision)
    if commit is None:
        return None
    quants = (
        [source.quant(ref.quant)]
        if ref.quant
        else sorted(source.quants.values(), key=lambda q: quality_rank(q.quant))
    )
    for quant in quants:
        if quant is None:
            continue
        names = _local_names(quant.files)
        paths = tuple(snapshot_file(source.repo, commit, name) for name in names)
        if all(p.exists() for p in paths):
            return LocalModel(
                name=entry.name,
                path=paths[0],
                files=paths,
                quant=quant.quant,
                repo_id=source.repo,
                revision=commit,
                extra={"source": "hub"},
            )
    return None


def _local_names(files: tuple[str, ...]) -> tuple[str, ...]:
    """``.partXofY`` pieces live in the snapshot as their one joined file."""
    match = PARTS_RE.match(files[0].rsplit("/", 1)[-1])
    if match is None:
        return files
    folder = files[0].rpartition("/")[0]
    return (f"{folder}/{match.group('joined')}" if folder else match.group("joined"),)


def _read_ref(repo_id: str, revision: str) -> str | None:
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    try:
        return (repo_dir(repo_id) / "refs" / revision).read_text().strip() or None
    except OSError:
        return None
