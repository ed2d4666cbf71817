"""The Hugging Face cache layout (``HF_HUB_CACHE``), shared with every HF tool.

    <cache>/models--owner--name/blobs/<etag>                 file contents
    <cache>/models--owner--name/snapshots/<commit>/<path>    relative symlinks to blobs
    <cache>/models--owner--name/refs/<revision>              the commit a branch pointed to
    <cache>/.locks/models--owner--name/<etag>.lock           the lock huggingface_hub also takes
    <cache>/.localchat-partial/models--owner--name/<etag>.incomplete   our resumable partials

``etag`` is the LFS sha256 for LFS files and the git blob sha1 otherwise, exactly
as huggingface_hub names blobs, so a file either side downloaded is reused.

Commits, etags and repo paths come from the hub: every method that turns one into
a path checks it (``hub.names``), and ``link`` only ever replaces a symlink.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from localchat.errors import DownloadFailed, NotEnoughDisk
from localchat.hub.names import check_commit, check_etag, check_repo_path, check_revision
from localchat.paths import hf_cache_dir, partial_downloads_dir


def repo_folder(repo_id: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    return repo_folder_name(repo_id=repo_id, repo_type="model")


@dataclass(frozen=True)
class RepoCache:
    repo_id: str
    cache_dir: Path

    @classmethod
    def for_repo(cls, repo_id: str) -> RepoCache:
        return cls(repo_id=repo_id, cache_dir=hf_cache_dir())

    @property
    def root(self) -> Path:
        return self.cache_dir / repo_folder(self.repo_id)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / check_etag(etag)

    def snapshot_dir(self, commit: str) -> Path:
        return self.root / "snapshots" / check_commit(commit)

    def pointer(self, commit: str, path_in_repo: str) -> Path:
        return self.snapshot_dir(commit).joinpath(*check_repo_path(path_in_repo).split("/"))

    def ref_file(self, revision: str) -> Path:
        return self.root / "refs" / check_revision(revision)

    def lock_file(self, etag: str) -> Path:
        return self.cache_dir / ".locks" / repo_folder(self.repo_id) / f"{check_etag(etag)}.lock"

    def partial(self, etag: str) -> Path:
        folder = partial_downloads_dir() / repo_folder(self.repo_id)
        return folder / f"{check_etag(etag)}.incomplete"

    def read_ref(self, revision: str) -> str | None:
        try:
            return self.ref_file(revision).read_text().strip() or None
        except OSError:
            return None

    def write_ref(self, revision: str, commit: str) -> None:
        """Point ``refs/<revision>`` at ``commit`` (atomically), as hf_hub_download does."""
        if revision == commit:
            return
        path = self.ref_file(revision)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.read_ref(revision) == commit:
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, path)

    def link(self, etag: str, commit: str, path_in_repo: str) -> Path:
        """Make ``snapshots/<commit>/<path>`` point at ``blobs/<etag>``; returns the pointer.

        An old symlink there is replaced; a real file or a folder (another tool's, or
        the user's) is never removed: ``DownloadFailed`` asks the user to move it.
        """
        blob = self.blob(etag)
        pointer = self.pointer(commit, path_in_repo)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside_snapshot(commit, pointer)
        if pointer.is_symlink() or pointer.exists():
            if pointer.resolve() == blob.resolve():
                return pointer
            if not pointer.is_symlink():
                raise DownloadFailed(
                    f"{pointer} is in the way of the downloaded file",
                    hint="move it elsewhere and pull again",
                )
            pointer.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        except OSError:
            shutil.copyfile(blob, pointer)  # filesystems without symlinks, as huggingface_hub does
        return pointer

    def _check_inside_snapshot(self, commit: str, pointer: Path) -> None:
        """A folder in the snapshot that is a symlink elsewhere must not redirect writes."""
        snapshot = self.snapshot_dir(commit).resolve()
        if not pointer.parent.resolve().is_relative_to(snapshot):
            raise DownloadFailed(
                f"{pointer.parent} leads outside the model cache; refused",
                hint=f"remove {self.snapshot_dir(commit)} and pull again",
            )

    def snapshot_commits(self) -> list[str]:
        snapshots = self.root / "snapshots"
        return sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []


def cache_write_error(exc: OSError) -> DownloadFailed:
    """An OSError while writing the cache, as the download error the user can act on."""
    import errno

    cache = hf_cache_dir()
    if isinstance(exc, ConnectionError | TimeoutError):
        return DownloadFailed(f"the connection to the hub failed ({type(exc).__name__})")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NotEnoughDisk(
            f"the disk holding {cache} is full",
            hint="free space (`localchat rm`), or set HF_HUB_CACHE to a bigger disk; "
            "pull again to resume",
        )
    where = exc.filename or cache
    return DownloadFailed(
        f"cannot write the model cache at {where} ({exc.strerror or type(exc).__name__})",
        hint="make it a writable folder, or set HF_HUB_CACHE to one",
    )


def free_bytes_at(path: Path) -> tuple[int, Path]:
    """Free space on the disk that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free, probe
