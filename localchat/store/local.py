"""Find a model's files on disk without touching the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from localchat.errors import CorruptModelFile, ModelNotFound
from localchat.reference import ModelRef
from localchat.store.pip_models import pip_model_file

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


def _quant_from_name(filename: str) -> str | None:
    from localchat.gguf.quants import quant_in_filename

    return quant_in_filename(filename)
