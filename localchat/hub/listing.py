"""A repo's files on the hub: one listing, with retries as the caller asks.

``pull`` lists a repo at the commit its branch points to (and retries transient
failures); ``plan`` lists it once and fails fast (``ONE_TRY``) so that an unreachable hub
is said at once.  Everything the hub sends is checked (``hub.names``) before use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from localchat.errors import DownloadFailed
from localchat.hub.client import (
    RetryPolicy,
    TransientError,
    hub_endpoint,
    hub_errors,
    hub_token,
    status_error,
    with_retries,
)
from localchat.hub.names import check_commit, check_etag, check_repo_path, unsafe_name
from localchat.hub.pages import JsonListing, same_origin
from localchat.hub.verify import ExpectedDigest

ONE_TRY = RetryPolicy(attempts=1)
MAX_TREE_PAGES = 100  # the hub sends 1000 files a page: 100,000 files
TIMEOUT_S = 30.0


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


def remote_files(entries: Iterable[Mapping[str, Any]]) -> list[RemoteFile]:
    """The hub's tree entries (``{"path", "size", "oid", "lfs": {"oid", "size"}}``) as
    RemoteFile, every name, id and size checked."""
    return [_remote_file(entry) for entry in entries]


def _remote_file(entry: Mapping[str, Any]) -> RemoteFile:
    lfs = entry.get("lfs")
    lfs = lfs if isinstance(lfs, dict) else None
    return RemoteFile(
        path=check_repo_path(entry.get("path")),
        size_bytes=_size(lfs.get("size") if lfs is not None else entry.get("size")),
        blob_id=check_etag(entry.get("oid")),
        sha256=check_etag(lfs.get("oid")) if lfs is not None else None,
    )


def _size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 50:
        raise unsafe_name("file size", value)
    return value


def _what(repo_id: str, revision: str) -> str:
    return f"{repo_id}@{revision}" if revision != "main" else repo_id


def list_files(
    repo_id: str, revision: str, *, policy: RetryPolicy | None = None, label: str = ""
) -> list[RemoteFile]:
    """Every file of ``repo_id`` at ``revision`` (all pages of the hub's tree listing,
    ``MAX_TREE_PAGES`` at most, each read with a size bound).  ``label`` names the repo in
    errors (default: ``repo@revision``)."""
    what = label or _what(repo_id, revision)
    url = f"{hub_endpoint()}/api/models/{repo_id}/tree/{quote(revision, safe='')}"

    def call() -> list[RemoteFile]:
        with hub_errors(what, repo_id=repo_id):
            return _tree_files(url, what, repo_id)

    return with_retries(call, what=f"listing {what}", policy=policy)


def _tree_files(url: str, what: str, repo_id: str) -> list[RemoteFile]:
    listing = JsonListing(
        f"listing {what}",
        check_status=lambda status: _check_listing_status(status, what, repo_id),
        hint="check the network; catalog models also plan offline",
        timeout_s=TIMEOUT_S,
        raw_transport_errors=True,  # the caller's retry policy judges them
    )
    files: list[RemoteFile] = []
    page_url = url
    params: dict[str, Any] | None = {"recursive": "true", "expand": "false"}
    for _ in range(MAX_TREE_PAGES):
        page, next_url = listing.page(page_url, params)
        files += remote_files(entry for entry in page if _is_file(entry))
        params = None  # the next link carries the query
        if next_url is None:
            return files
        if not same_origin(next_url):  # a token is never sent elsewhere
            raise DownloadFailed(
                f"listing {what}: the hub's next page is on another host; refused",
                hint="check HF_ENDPOINT: only trusted hubs should answer it",
            )
        page_url = next_url
    raise DownloadFailed(f"listing {what}: more than {MAX_TREE_PAGES} pages of files; refused")


def _check_listing_status(status: int, what: str, repo_id: str) -> None:
    if status == 200:
        return
    if status in (408, 429) or status >= 500:
        raise TransientError(f"the hub answered HTTP {status}")
    raise status_error(status, f"listing {what}", repo_id=repo_id)


def _is_file(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("type") == "file"


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
