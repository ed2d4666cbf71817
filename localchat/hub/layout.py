"""The Hugging Face cache layout (``HF_HUB_CACHE``), shared with every HF tool.

    <cache>/models--owner--name/blobs/<etag>                 file contents
    <cache>/models--owner--name/snapshots/<commit>/<path>    relative symlinks to blobs
    <cache>/models--owner--name/refs/<revision>              the commit a branch pointed to
    <cache>/.locks/models--owner--name/<etag>.lock           the lock huggingface_hub also takes
    <cache>/.localchat-partial/models--owner--name/<etag>.incomplete   our resumable partials

``etag`` is the LFS sha256 for LFS files and the git blob sha1 otherwise, exactly
as huggingface_hub names blobs, so a file either side downloaded is reused.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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
        return self.root / "blobs" / etag

    def snapshot_dir(self, commit: str) -> Path:
        return self.root / "snapshots" / commit

    def pointer(self, commit: str, path_in_repo: str) -> Path:
        return self.snapshot_dir(commit).joinpath(*path_in_repo.split("/"))

    def ref_file(self, revision: str) -> Path:
        return self.root / "refs" / revision

    def lock_file(self, etag: str) -> Path:
        return self.cache_dir / ".locks" / repo_folder(self.repo_id) / f"{etag}.lock"

    def partial(self, etag: str) -> Path:
        return partial_downloads_dir() / repo_folder(self.repo_id) / f"{etag}.incomplete"

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
        """Make ``snapshots/<commit>/<path>`` point at ``blobs/<etag>``; returns the pointer."""
        blob = self.blob(etag)
        pointer = self.pointer(commit, path_in_repo)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            if pointer.resolve() == blob.resolve():
                return pointer
            pointer.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        except OSError:
            shutil.copyfile(blob, pointer)  # filesystems without symlinks, as huggingface_hub does
        return pointer

    def snapshot_commits(self) -> list[str]:
        snapshots = self.root / "snapshots"
        return sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []


def free_bytes_at(path: Path) -> tuple[int, Path]:
    """Free space on the disk that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free, probe
