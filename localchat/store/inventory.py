"""Everything on disk that localchat can run: ``list`` and ``rm`` are built on this.

Sources: models localchat pulled (registry), models other HF tools put in the cache
(found by the formats, ``store.model.StoreFormat``), the pip-delivered offline model,
and local-path models the user ran.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from localchat.catalog import load_catalog
from localchat.paths import hf_cache_dir, partial_downloads_dir
from localchat.store.cache import model_from_record, repo_dir
from localchat.store.local import listed_pip_model
from localchat.store.model import LocalModel, StoreFormat
from localchat.store.registry import PulledModel, all_pulled, forget_pulled
from localchat.store.usage import all_usage, forget_usage, last_used


def list_installed(formats: Sequence[StoreFormat] = ()) -> list[LocalModel]:
    """Every model on disk, each once: pulled, other HF tools', pip-delivered, paths run."""
    pulled = [m for r in all_pulled() if (m := model_from_record(r)) is not None]
    seen = {m.key for m in pulled}
    others = [m for m in _hf_cache_models(formats) if m.key not in seen]
    return pulled + others + _pip_models() + _path_models()


def _hf_cache_models(formats: Sequence[StoreFormat]) -> list[LocalModel]:
    """Models any HF tool put in the cache (every snapshot, every format and quant)."""
    cache = hf_cache_dir()
    if not cache.is_dir():
        return []
    found = []
    for folder in sorted(cache.glob("models--*")):
        repo_id = folder.name[len("models--") :].replace("--", "/", 1)
        for snapshot in sorted((folder / "snapshots").glob("*")):
            for fmt in formats:
                found.extend(_snapshot_models(fmt, repo_id, snapshot))
    return found


def _snapshot_models(fmt: StoreFormat, repo_id: str, snapshot: Path) -> list[LocalModel]:
    models = []
    for group in fmt.snapshot_models(snapshot):
        files = tuple(snapshot.joinpath(*p.split("/")) for p in group.paths)
        model = LocalModel(
            name=repo_id,
            format=fmt.name,
            path=snapshot.joinpath(*group.opens.split("/")) if group.opens else snapshot,
            files=files,
            quant=group.quant,
            source="hf-cache",
            repo_id=repo_id,
            revision=snapshot.name,
        )
        models.append(replace(model, last_used=last_used(model.key)))
    return models


def _pip_models() -> list[LocalModel]:
    """Listing never assembles the pip model's file."""
    return [m for e in load_catalog().entries.values() if e.pip and (m := listed_pip_model(e))]


def _path_models() -> list[LocalModel]:
    models = []
    for record in all_usage():
        if not record.key.startswith("path:") or not record.path:
            continue
        path = Path(record.path)
        if not path.is_file():
            continue
        models.append(
            LocalModel(
                name=path.name,
                format=record.format,
                path=path,
                files=(path,),
                quant=record.quant,
                source="path",
                last_used=record.last_used,
            )
        )
    return models


# ----------------------------------------------------------------------------- removal


def remove_installed(model: LocalModel) -> int:
    """Delete a hub/hf-cache model's snapshot files and now-unused blobs; returns bytes freed.

    A local-path model is only forgotten (the user's file is left alone).
    """
    if model.source == "path":
        forget_usage(model.key)
        return 0
    if model.repo_id is None:
        return 0
    folder = repo_dir(model.repo_id)
    pointers = set(model.files)
    freed = sum(_remove_pointer(folder, pointer, pointers) for pointer in pointers)
    _prune_empty_dirs(folder / "snapshots")
    if not any((folder / "snapshots").glob("*")):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(partial_downloads_dir() / folder.name, ignore_errors=True)
    for record in all_pulled():
        if record.repo_id.lower() == model.repo_id.lower() and _same_quant(record, model):
            forget_pulled(record)
    forget_usage(model.key)
    return freed


def _same_quant(record: PulledModel, model: LocalModel) -> bool:
    return (record.quant or record.format).upper() == (model.quant or model.format).upper()


def _remove_pointer(folder: Path, pointer: Path, removing: set[Path]) -> int:
    if not pointer.is_symlink():
        size = pointer.stat().st_size if pointer.exists() else 0
        pointer.unlink(missing_ok=True)
        return size
    blob = pointer.resolve()
    pointer.unlink()
    if not blob.exists() or _still_linked(folder, blob, removing):
        return 0
    size = blob.stat().st_size
    blob.unlink()
    return size


def _still_linked(folder: Path, blob: Path, removing: set[Path]) -> bool:
    for other in (folder / "snapshots").rglob("*"):
        if other in removing or not other.is_symlink():
            continue
        if other.resolve() == blob:
            return True
    return False


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
