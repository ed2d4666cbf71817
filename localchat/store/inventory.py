"""Everything on disk that localchat can run: ``list`` and ``rm`` are built on this.

Sources: models localchat pulled (registry), GGUF repos other HF tools put in the
cache, the pip-delivered offline model, and local-path models the user ran.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from localchat.gguf.quants import classify_gguf_path, quant_in_stem
from localchat.paths import hf_cache_dir, partial_downloads_dir
from localchat.store.cache import model_from_record, repo_dir
from localchat.store.pip_models import pip_model_listing
from localchat.store.registry import PulledModel, all_pulled, forget_pulled
from localchat.store.usage import all_usage, forget_usage, last_used


@dataclass(frozen=True)
class InstalledModel:
    name: str
    quant: str | None
    format: str  # "gguf" or "awq"
    size_bytes: int
    last_used: float | None  # unix time
    path: str  # what the engine opens
    source: str  # "hub" (pulled by localchat), "hf-cache" (another HF tool), "pip", "path"
    repo_id: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()  # absolute paths

    @property
    def key(self) -> str:
        if self.repo_id:
            return f"{self.repo_id.lower()}:{(self.quant or self.format).upper()}"
        return f"{self.source}:{self.path if self.source == 'path' else self.name}"

    def to_json(self) -> dict:
        return asdict(self)


def list_installed() -> list[InstalledModel]:
    pulled = _pulled_models()
    seen = {m.key for m in pulled}
    others = [m for m in _hf_cache_models() if m.key not in seen]
    return pulled + others + _pip_models() + _path_models()


def _pulled_models() -> list[InstalledModel]:
    models = []
    for record in all_pulled():
        local = model_from_record(record)
        if local is None:
            continue
        key = f"{record.repo_id.lower()}:{(record.quant or record.format).upper()}"
        models.append(
            InstalledModel(
                name=record.name,
                quant=record.quant,
                format=record.format,
                size_bytes=local.size_bytes,
                last_used=last_used(key),
                path=str(local.path),
                source="hub",
                repo_id=record.repo_id,
                commit=record.commit,
                files=tuple(str(p) for p in local.files),
            )
        )
    return models


def _hf_cache_models() -> list[InstalledModel]:
    """GGUF models that any HF tool put in the cache (every snapshot, every quant)."""
    cache = hf_cache_dir()
    if not cache.is_dir():
        return []
    found = []
    for folder in sorted(cache.glob("models--*")):
        repo_id = folder.name[len("models--") :].replace("--", "/", 1)
        for snapshot in sorted((folder / "snapshots").glob("*")):
            found.extend(_snapshot_models(repo_id, snapshot))
    return found


def _snapshot_models(repo_id: str, snapshot: Path) -> list[InstalledModel]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(snapshot.rglob("*.gguf")):
        if not path.exists():
            continue
        classified = classify_gguf_path(path.relative_to(snapshot).as_posix())
        if classified is None:
            continue
        groups.setdefault(classified[0], []).append(path)
    models = []
    for stem, paths in groups.items():
        quant = quant_in_stem(stem.rsplit("/", 1)[-1])
        key = f"{repo_id.lower()}:{(quant or 'gguf').upper()}"
        models.append(
            InstalledModel(
                name=repo_id,
                quant=quant,
                format="gguf",
                size_bytes=sum(p.stat().st_size for p in paths),
                last_used=last_used(key),
                path=str(paths[0]),
                source="hf-cache",
                repo_id=repo_id,
                commit=snapshot.name,
                files=tuple(str(p) for p in paths),
            )
        )
    return models


def _pip_models() -> list[InstalledModel]:
    from localchat.catalog import load_catalog

    models = []
    for entry in load_catalog().entries.values():
        source = entry.pip
        listed = pip_model_listing(entry.name, source) if source is not None else None
        if source is None or listed is None:  # listing never assembles the file
            continue
        models.append(
            InstalledModel(
                name=entry.name,
                quant=source.quant,
                format="gguf",
                size_bytes=listed.size_bytes,
                last_used=last_used(f"pip:{entry.name}"),
                path=str(listed.path),
                source="pip",
                files=(str(listed.path),),
            )
        )
    return models


def _path_models() -> list[InstalledModel]:
    models = []
    for record in all_usage():
        if not record.key.startswith("path:") or not record.path:
            continue
        path = Path(record.path)
        if not path.is_file():
            continue
        models.append(
            InstalledModel(
                name=path.name,
                quant=record.quant,
                format="gguf",
                size_bytes=path.stat().st_size,
                last_used=record.last_used,
                path=str(path),
                source="path",
                files=(str(path),),
            )
        )
    return models


# ----------------------------------------------------------------------------- removal


def remove_installed(model: InstalledModel) -> int:
    """Delete a hub/hf-cache model's snapshot files and now-unused blobs; returns bytes freed.

    A local-path model is only forgotten (the user's file is left alone).
    """
    if model.source == "path":
        forget_usage(model.key)
        return 0
    if model.repo_id is None:
        return 0
    folder = repo_dir(model.repo_id)
    pointers = {Path(p) for p in model.files}
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


def _same_quant(record: PulledModel, model: InstalledModel) -> bool:
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
