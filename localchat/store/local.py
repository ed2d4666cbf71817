"""Find a model's files on disk without touching the network; pip-delivered models."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from localchat.catalog.schema import CatalogEntry, PipSource
from localchat.errors import CorruptModelFile
from localchat.jsonfile import read_json, update_json
from localchat.paths import pip_models_dir
from localchat.reference import ModelRef
from localchat.store.cache import find_in_hf_cache
from localchat.store.model import LocalModel, StoreFormat
from localchat.store.usage import last_used

PIP_MODEL_FORMAT = "gguf"  # the catalog's pip packages deliver one GGUF file


def find_local(ref: ModelRef, formats: Sequence[StoreFormat] = ()) -> LocalModel | None:
    """MODEL's files if they are all on disk, else None.

    The store knows what was pulled and what came with pip; ``formats`` (handed in by the
    services from ``engine.registry``) say which catalog repos hold which format and which
    files make a model.  A path is not the store's to judge: the services ask the formats.
    """
    if ref.kind == "path":
        return None
    entry = ref.entry
    if entry is not None and entry.pip is not None and entry.gguf is None:
        return pip_model(entry)
    return find_in_hf_cache(ref, formats)


def pip_model(entry: CatalogEntry) -> LocalModel | None:
    """The model a catalog entry's pip package delivers, if that package is installed."""
    source = entry.pip
    path = pip_model_file(entry.name, source) if source is not None else None
    if source is None or path is None:
        return None
    return LocalModel(
        name=entry.name,
        format=PIP_MODEL_FORMAT,
        path=path,
        files=(path,),
        quant=source.quant,
        source="pip",
        last_used=last_used(f"pip:{entry.name}"),
    )


def pip_model_file(name: str, source: PipSource, directory: Path | None = None) -> Path | None:
    """The pip package's model, assembled under ``pip_models_dir()`` (so LOCALCHAT_HOME
    moves it too), or None when the package is not installed.

    The package's ``assemble(path)`` checks the file's sha256 (about a second for
    253 MB); a file it checked is remembered by size and mtime, so later lookups (each
    ``ask``, each row of the app's model list) only ``stat`` it.
    """
    try:
        module = importlib.import_module(source.module)
        version = importlib.metadata.version(source.package)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    directory = directory or pip_models_dir()
    target = directory / f"{name}.{source.quant}.gguf"
    stamps = directory / "verified.json"
    stamp_key = f"{source.package}=={version}"
    if _verified(target, stamps, stamp_key):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=600):
        if not _verified(target, stamps, stamp_key):
            _assemble(module, target)
            stamp = _stamp(target)
            update_json(stamps, lambda data: data.__setitem__(stamp_key, stamp))
    return target


def _assemble(module: Any, target: Path) -> None:
    """Assemble (and verify) into a temporary file, then rename: never a half file."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        module.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise CorruptModelFile(
            f"the pip package's model could not be assembled into {target}: {exc}",
            hint="reinstall the package (pip install --force-reinstall)",
        ) from exc
    finally:
        partial.unlink(missing_ok=True)


def _verified(target: Path, stamps: Path, stamp_key: str) -> bool:
    stamp = _stamp(target)
    return stamp is not None and stamp == read_json(stamps).get(stamp_key)


def _stamp(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]
