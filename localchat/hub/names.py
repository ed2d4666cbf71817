"""Names that come from the hub, checked before any of them becomes a path on disk.

A hub (or anything answering at ``HF_ENDPOINT``) chooses the commit sha, the file
paths and the blob ids that name directories, symlinks and blobs in the HF cache.
A sha of ``../../x`` or a path of ``/etc/x`` must never reach ``Path``: each is
checked here, where it enters, and again by ``RepoCache`` where it becomes a path.
"""

from __future__ import annotations

import re

from localchat.errors import DownloadFailed

_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_ETAG_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # git sha1 or LFS sha256
_REVISION_PART_RE = re.compile(r"[A-Za-z0-9._+-]+")
MAX_REPO_PATH_CHARS = 1024


def unsafe_name(what: str, value: object) -> DownloadFailed:
    shown = repr(value)[:80]
    return DownloadFailed(
        f"the hub sent an unsafe {what} ({shown}); refused",
        hint="check HF_ENDPOINT: only trusted hubs should answer it",
    )


def check_commit(commit: object) -> str:
    """A commit sha: exactly 40 lowercase hex digits."""
    if not isinstance(commit, str) or not _COMMIT_RE.fullmatch(commit):
        raise unsafe_name("commit id", commit)
    return commit


def check_etag(etag: object) -> str:
    """A blob name: a git sha1 (40 hex) or an LFS sha256 (64 hex)."""
    if not isinstance(etag, str) or not _ETAG_RE.fullmatch(etag):
        raise unsafe_name("blob id", etag)
    return etag


def check_repo_path(path: object) -> str:
    """A file's path inside a repo: relative, ``/``-separated, no ``..`` or ``.`` parts."""
    if not isinstance(path, str) or not path or len(path) > MAX_REPO_PATH_CHARS:
        raise unsafe_name("file path", path)
    parts = path.split("/")
    bad_char = any(c in path for c in "\\\0") or any(ord(c) < 32 for c in path)
    if bad_char or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise unsafe_name("file path", path)
    if len(parts[0]) >= 2 and parts[0][1] == ":":  # a Windows drive ("C:")
        raise unsafe_name("file path", path)
    return path


def check_revision(revision: str) -> str:
    """A branch, tag or sha as ``refs/<revision>`` names it (``refs/pr/1`` allowed)."""
    parts = revision.split("/")
    if any(p in ("", ".", "..") or not _REVISION_PART_RE.fullmatch(p) for p in parts):
        raise DownloadFailed(
            f"invalid revision {revision[:80]!r}", hint="a branch, tag or commit sha"
        )
    return revision
