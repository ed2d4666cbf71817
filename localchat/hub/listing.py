"""A repo's files on the hub: one listing, with retries as the caller asks.

``pull`` lists a repo at the commit its branch points to (and retries transient
failures); ``plan`` lists it once and fails fast (``ONE_TRY``) so that an unreachable hub
is said at once.  Everything the hub sends is checked (``hub.names``) before use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from localchat.hub.client import RetryPolicy, hub_endpoint, hub_errors, hub_token, with_retries
from localchat.hub.names import check_commit, check_etag, check_repo_path, unsafe_name
from localchat.hub.verify import ExpectedDigest

ONE_TRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit, with the checksum the hub recorded."""

    path: str
    size_bytes: int
    blob_id: str  # git sha1 of the file (or of its LFS pointer)
    sha256: str | None = None  # LFS oid: sha256 of the content

    @property
    def etag(self) -> str:
        """The blob name huggingface_hub uses in its cache."""
        return self.sha256 or self.blob_id

    @property
    def digest(self) -> ExpectedDigest:
        if self.sha256:
            return ExpectedDigest("sha256", self.sha256, self.size_bytes)
        return ExpectedDigest("git-sha1", self.blob_id, self.size_bytes)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Listing:
    """A repo's files at one commit (``revision`` is what was asked for)."""

    repo_id: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]


def remote_files(entries: Iterable[Any]) -> list[RemoteFile]:
    """huggingface_hub ``RepoFile`` entries → RemoteFile, every name checked."""
    return [
        RemoteFile(
            path=check_repo_path(entry.path),
            size_bytes=_size(entry.size),
            blob_id=check_etag(entry.blob_id),
            sha256=check_etag(entry.lfs.sha256) if entry.lfs is not None else None,
        )
        for entry in entries
    ]


def _size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 50:
        raise unsafe_name("file size", value)
    return value


def _what(repo_id: str, revision: str) -> str:
    return f"{repo_id}@{revision}" if revision != "main" else repo_id


def list_files(
    repo_id: str, revision: str, *, policy: RetryPolicy | None = None, label: str = ""
) -> list[RemoteFile]:
    """Every file of ``repo_id`` at ``revision`` (all pages of the hub's tree listing).
    ``label`` names the repo in errors (default: ``repo@revision``)."""
    # huggingface_hub takes 0.2 s to import: only when the hub is asked
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=hub_endpoint(), token=hub_token())
    what = label or _what(repo_id, revision)

    def call() -> list[RemoteFile]:
        with hub_errors(what, repo_id=repo_id):
            entries = api.list_repo_tree(repo_id, recursive=True, revision=revision)
            return remote_files(e for e in entries if isinstance(e, RepoFile))

    return with_retries(call, what=f"listing {what}", policy=policy)


def fetch_listing(repo_id: str, revision: str) -> Listing:
    """The commit ``revision`` points to, and the repo's files at that commit."""
    from huggingface_hub import HfApi  # slow to import: only when the hub is asked

    api = HfApi(endpoint=hub_endpoint(), token=hub_token())
    what = _what(repo_id, revision)

    def commit_of() -> str:
        with hub_errors(what, repo_id=repo_id):
            return check_commit(api.model_info(repo_id, revision=revision).sha)

    commit = with_retries(commit_of, what=f"listing {what}")
    files = list_files(repo_id, commit, label=what)
    return Listing(repo_id, revision, commit, tuple(files))
