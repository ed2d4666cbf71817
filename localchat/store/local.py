"""Find a model's files on disk without touching the network."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from localchat.catalog.schema import PipSource
from localchat.errors import CorruptModelFile, ModelNotFound
from localchat.jsonfile import read_json, update_json
from localchat.paths import pip_models_dir
from localchat.reference import ModelRef

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class LocalModel:
    """A model whose files are all on disk.

    ``path`` is what the engine opens (the first split, or the single file);
    ``files`` are all of them.
    """

    name: str
    path: Path
    files: tuple[Path, ...]
    quant: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    format: str = "gguf"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


def find_local(ref: ModelRef) -> LocalModel | None:
    """The model's files if they are all on disk, else None."""
    if ref.kind == "path":
        return _from_path(ref)
    if ref.entry is not None and ref.entry.pip is not None and ref.entry.gguf is None:
        return _from_pip(ref)
    from localchat.store.cache import find_in_hf_cache

    return find_in_hf_cache(ref)


def _from_path(ref: ModelRef) -> LocalModel:
    """A path is a model only when it is a GGUF file (by its magic) or a model folder."""
    assert ref.path is not None
    path = ref.path
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise ModelNotFound(f"no such file: {path}", hint="check the path to the .gguf")
    _require_gguf_magic(path)
    return LocalModel(
        name=path.name,
        path=path,
        files=(path,),
        quant=_quant_from_name(path.name),
        extra={"source": "path"},
    )


def _require_gguf_magic(path: Path) -> None:
    """``pull /etc/passwd`` must not say "on disk": only a GGUF file is a model file."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelNotFound(f"cannot read {path} ({exc.strerror})") from exc
    if magic == GGUF_MAGIC:
        return
    if path.suffix.lower() == ".gguf":  # meant as a model, but damaged
        raise CorruptModelFile(
            f"{path.name}: not a GGUF file (it does not start with GGUF)",
            hint="delete the file and download it again",
        )
    raise ModelNotFound(
        f"{path} is not a model file (not GGUF)",
        hint="give a .gguf file, an AWQ checkpoint folder, or a model name",
    )


def _from_folder(path: Path) -> LocalModel:
    """A checkpoint folder (AWQ safetensors + config.json); checked when it is loaded."""
    weights = sorted(path.glob("*.safetensors"))
    if not (path / "config.json").is_file() or not weights:
        raise ModelNotFound(
            f"{path} is not a model folder (no config.json and *.safetensors)",
            hint="give a .gguf file or an AWQ checkpoint folder",
        )
    files = (path / "config.json", *weights)
    return LocalModel(
        name=path.name, path=path, files=files, quant="AWQ", format="awq", extra={"source": "path"}
    )


def _from_pip(ref: ModelRef) -> LocalModel | None:
    assert ref.entry is not None and ref.entry.pip is not None
    path = pip_model_file(ref.entry.name, ref.entry.pip)
    if path is None:
        return None
    return LocalModel(
        name=ref.entry.name,
        path=path,
        files=(path,),
        quant=ref.entry.pip.quant,
        format="gguf",
        extra={"source": "pip"},
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


def _quant_from_name(filename: str) -> str | None:
    from localchat.gguf.quants import quant_in_filename

    return quant_in_filename(filename)
