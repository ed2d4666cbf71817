"""Find a model's files on disk without touching the network."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from localchat.errors import ModelNotFound
from localchat.reference import ModelRef


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
    assert ref.path is not None
    path = ref.path
    if not path.is_file():
        raise ModelNotFound(f"no such file: {path}", hint="check the path to the .gguf")
    return LocalModel(
        name=path.name,
        path=path,
        files=(path,),
        quant=_quant_from_name(path.name),
        extra={"source": "path"},
    )


def _from_pip(ref: ModelRef) -> LocalModel | None:
    assert ref.entry is not None and ref.entry.pip is not None
    source = ref.entry.pip
    try:
        module = importlib.import_module(source.module)
    except ImportError:
        return None
    path = Path(module.assemble())
    return LocalModel(
        name=ref.entry.name,
        path=path,
        files=(path,),
        quant=source.quant,
        format="gguf",
        extra={"source": "pip"},
    )


def _quant_from_name(filename: str) -> str | None:
    from localchat.store.quants import quant_in_filename

    return quant_in_filename(filename)
