"""Put a resolved model's files into the HF cache: lock, resume, verify, rename, link.

Single files and llama.cpp splits become ``blobs/<etag>`` + ``snapshots/<commit>/<path>``
(splits side by side, so llama.cpp finds the other parts next to the first).
``.partXofY`` pieces are downloaded and verified one by one, then appended into
one blob that appears in the snapshot under the joined name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from localchat.errors import NotEnoughDisk
from localchat.hub.client import hub_endpoint, hub_errors, hub_token, with_retries
from localchat.hub.download import FetchJob, existing_partial_bytes, fetch_verified
from localchat.hub.layout import RepoCache, free_bytes_at
from localchat.hub.listing import RemoteFile
from localchat.hub.resolve import ResolvedModel
from localchat.hub.tracker import ProgressTracker
from localchat.units import format_bytes

LOCK_POLL_S = 0.2


def missing_bytes(resolved: ResolvedModel) -> int:
    """Bytes still to download (and scratch space needed to join pieces), for the disk check."""
    repo = RepoCache.for_repo(resolved.repo_id)
    if all(repo.pointer(resolved.commit, p).exists() for p in resolved.local_paths):
        return 0
    need = 0
    for remote in resolved.files:
        if repo.blob(remote.etag).exists():
            continue
        need += remote.size_bytes - existing_partial_bytes(repo.partial(remote.etag))
    if resolved.layout == "parts":
        need += max(f.size_bytes for f in resolved.files[1:])  # a piece is copied before deletion
    return max(0, need)


def check_disk_space(resolved: ResolvedModel) -> None:
    need = missing_bytes(resolved)
    if need == 0:
        return
    cache_dir = RepoCache.for_repo(resolved.repo_id).cache_dir
    free, where = free_bytes_at(cache_dir)
    if need > free:
        raise NotEnoughDisk(
            f"{resolved.label} needs {format_bytes(need)} more on the disk holding {cache_dir}, "
            f"which has {format_bytes(free)} free",
            hint=f"free space on {where} (`localchat rm`), or set HF_HUB_CACHE to a bigger disk",
        )


def fetch_model(resolved: ResolvedModel, tracker: ProgressTracker) -> tuple[Path, ...]:
    """All of ``resolved``'s files in the snapshot folder; returns their snapshot paths."""
    repo = RepoCache.for_repo(resolved.repo_id)
    if resolved.layout == "parts":
        paths: tuple[Path, ...] = (_fetch_pieces(repo, resolved, tracker),)
    else:
        paths = tuple(_fetch_file(repo, resolved, remote, tracker) for remote in resolved.files)
    repo.write_ref(resolved.revision, resolved.commit)
    return paths


def _fetch_file(
    repo: RepoCache, resolved: ResolvedModel, remote: RemoteFile, tracker: ProgressTracker
) -> Path:
    pointer = repo.pointer(resolved.commit, remote.path)
    if pointer.exists():
        tracker.skip_file(remote.path, remote.size_bytes)
        return pointer
    with _file_lock(repo.lock_file(remote.etag), remote.path, tracker):
        blob = repo.blob(remote.etag)
        if blob.exists() and blob.stat().st_size == remote.size_bytes:
            tracker.skip_file(remote.path, remote.size_bytes)
            return repo.link(remote.etag, resolved.commit, remote.path)
        partial = _download(repo, resolved, remote, tracker)
        _move_into_place(partial, blob)
    return repo.link(remote.etag, resolved.commit, remote.path)


def _download(
    repo: RepoCache, resolved: ResolvedModel, remote: RemoteFile, tracker: ProgressTracker
) -> Path:
    partial = repo.partial(remote.etag)
    tracker.start_file(
        remote.path, remote.size_bytes, present_bytes=existing_partial_bytes(partial)
    )
    url, headers = _locate(resolved, remote, tracker)
    job = FetchJob(
        url=url,
        label=remote.path,
        digest=remote.digest,
        partial=partial,
        headers=headers,
        repo_id=resolved.repo_id,
    )
    fetch_verified(
        job,
        on_bytes=tracker.add_bytes,
        on_retry=_retry_reporter(tracker),
        on_restart=tracker.restart_file,
    )
    tracker.finish_file()
    return partial


def _locate(
    resolved: ResolvedModel, remote: RemoteFile, tracker: ProgressTracker
) -> tuple[str, dict[str, str]]:
    """HEAD the resolve URL (auth, gating, redirect to the CDN); return where to GET."""
    # huggingface_hub takes 0.2 s to import: only when a file is downloaded
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    url = hf_hub_url(
        resolved.repo_id, remote.path, revision=resolved.commit, endpoint=hub_endpoint()
    )
    token = hub_token()

    def head() -> str:
        with hub_errors(remote.path, repo_id=resolved.repo_id):
            meta = get_hf_file_metadata(url, token=token, endpoint=hub_endpoint())
        return meta.location or url

    location = with_retries(head, what=remote.path, on_retry=_retry_reporter(tracker))
    headers = build_hf_headers(token=token)
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN URL: the token stays with the hub
        headers.pop("Authorization", None)
    return location, headers


def _retry_reporter(tracker: ProgressTracker) -> Callable[[str, float], None]:
    def report(cause: str, delay_s: float) -> None:
        tracker.emit("retry", f"{cause}; retrying in {delay_s:.1f}s", force=True)

    return report


def _move_into_place(partial: Path, blob: Path) -> None:
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, blob)


@contextmanager
def _file_lock(lock_path: Path, label: str, tracker: ProgressTracker) -> Iterator[None]:
    """The same lock file huggingface_hub takes, so concurrent pulls take turns."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=LOCK_POLL_S)
    except Timeout:
        tracker.file = label
        tracker.emit("waiting", "another download of this file is running; waiting", force=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------- .partXofY


def joined_etag(pieces: tuple[RemoteFile, ...]) -> str:
    """A stable blob name for the joined file, derived from the pieces' checksums."""
    return hashlib.sha256("\n".join(p.etag for p in pieces).encode()).hexdigest()


def _fetch_pieces(repo: RepoCache, resolved: ResolvedModel, tracker: ProgressTracker) -> Path:
    joined_path = resolved.local_paths[0]
    pointer = repo.pointer(resolved.commit, joined_path)
    etag = joined_etag(resolved.files)
    if pointer.exists():
        for piece in resolved.files:
            tracker.skip_file(piece.path, piece.size_bytes)
        return pointer
    with _file_lock(repo.lock_file(etag), joined_path, tracker):
        if not repo.blob(etag).exists():
            target = repo.partial(etag)
            _fetch_pieces_into(repo, resolved, target, tracker)
            _move_into_place(target, repo.blob(etag))
        else:
            for piece in resolved.files:
                tracker.skip_file(piece.path, piece.size_bytes)
    return repo.link(etag, resolved.commit, joined_path)


def _verified_piece(repo: RepoCache, piece: RemoteFile) -> Path:
    return repo.partial(piece.etag).with_suffix(".verified")


def _fetch_pieces_into(
    repo: RepoCache, resolved: ResolvedModel, target: Path, tracker: ProgressTracker
) -> None:
    """Download + verify each piece, then append them into ``target`` in order.

    Restart-safe: piece 1 is renamed to become ``target``; each later piece is
    deleted only after it was appended (and fsync'd), so on restart ``target`` is
    truncated back to the pieces already consumed and the rest appended again.
    """
    pieces = resolved.files
    consumed = 0
    if target.exists():  # a join was interrupted: every piece had been verified before it began
        consumed = 1
        while consumed < len(pieces) and not _verified_piece(repo, pieces[consumed]).exists():
            consumed += 1
    for index, piece in enumerate(pieces):
        if index < consumed:
            tracker.skip_file(piece.path, piece.size_bytes)
            continue
        verified = _verified_piece(repo, piece)
        if verified.exists():
            tracker.skip_file(piece.path, piece.size_bytes)
            continue
        partial = _download(repo, resolved, piece, tracker)
        os.replace(partial, verified)
    tracker.emit("join", f"joining {len(pieces)} pieces into one file", force=True)
    _append_pieces(repo, pieces, target, consumed)


def _append_pieces(
    repo: RepoCache, pieces: tuple[RemoteFile, ...], target: Path, consumed: int
) -> None:
    if consumed == 0:
        os.replace(_verified_piece(repo, pieces[0]), target)
        consumed = 1
    kept_bytes = sum(p.size_bytes for p in pieces[:consumed])
    with target.open("r+b", buffering=0) as out:
        out.truncate(kept_bytes)
        out.seek(kept_bytes)
        for index in range(consumed, len(pieces)):
            piece = pieces[index]
            source = _verified_piece(repo, piece)
            with source.open("rb", buffering=0) as handle:
                _copy_all(handle, out, piece.size_bytes)
            os.fsync(out.fileno())
            if all(later.etag != piece.etag for later in pieces[index + 1 :]):
                source.unlink()  # identical pieces share one verified file: keep it for them


def _copy_all(source: BinaryIO, dest: BinaryIO, size_bytes: int) -> None:
    offset = 0
    try:
        while offset < size_bytes:
            copied = os.copy_file_range(source.fileno(), dest.fileno(), size_bytes - offset)
            if copied == 0:
                break
            offset += copied
    except (AttributeError, OSError):
        source.seek(offset)
        while chunk := source.read(8 * 1024 * 1024):
            dest.write(chunk)
        return
    dest.seek(0, os.SEEK_END)
