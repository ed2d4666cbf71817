"""A resumable, verified HTTP Range download into a partial file.

The partial file is kept on any failure, Ctrl-C or kill; the next attempt
re-hashes what is there and asks the server for the rest with ``Range``.  The
sha256 (or git sha1) is computed while the bytes stream in, and a mismatch
deletes the partial.  The caller renames the verified partial into place.
"""

from __future__ import annotations

import hashlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from localchat.errors import DownloadFailed
from localchat.hub.client import (
    RetryPolicy,
    TransientError,
    describe_transient,
    hub_endpoint,
    is_transient,
)
from localchat.hub.http_get import check_status, open_get
from localchat.hub.verify import ExpectedDigest, hash_file_prefix
from localchat.units import format_bytes

BytesCallback = Callable[[int], None]
RetryCallback = Callable[[str, float], None]


@dataclass(frozen=True)
class FetchJob:
    url: str  # where the bytes are (hub resolve URL or the CDN location it redirects to)
    label: str  # path in the repo, for messages
    digest: ExpectedDigest
    partial: Path
    headers: dict[str, str]
    repo_id: str = ""


@dataclass
class _Stream:
    """State that survives retries: bytes on disk and the running hash over them."""

    job: FetchJob
    done_bytes: int
    hasher: hashlib._Hash
    on_restart: Callable[[], None] | None = None

    def restart(self) -> None:
        with self.job.partial.open("wb"):
            pass
        self.done_bytes = 0
        self.hasher = self.job.digest.new_hasher()
        if self.on_restart is not None:
            self.on_restart()


def existing_partial_bytes(partial: Path) -> int:
    try:
        return partial.stat().st_size
    except OSError:
        return 0


def fetch_verified(
    job: FetchJob,
    *,
    on_bytes: BytesCallback,
    on_retry: RetryCallback | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float | None = None,
    on_restart: Callable[[], None] | None = None,
) -> Path:
    """Download ``job`` into ``job.partial`` (resuming), verify it, return the partial path.

    ``on_bytes(n)`` is called as bytes land on disk; ``on_restart()`` when the partial
    had to be discarded (the server ignored Range, or the partial was too long).
    """
    policy = policy or RetryPolicy.from_env()
    stream = _open_stream(job, on_restart)
    failures = 0
    while stream.done_bytes < job.digest.size_bytes:
        before = stream.done_bytes
        try:
            _get_rest(stream, on_bytes=on_bytes, timeout_s=timeout_s or _download_timeout_s())
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures = 1 if stream.done_bytes > before else failures + 1
            if failures >= policy.attempts:
                raise _gave_up(job, stream, exc, failures) from exc
            delay = policy.delay_s(failures)
            if on_retry is not None:
                on_retry(describe_transient(exc), delay)
            time.sleep(delay)
    _check_digest(stream)
    return job.partial


def _open_stream(job: FetchJob, on_restart: Callable[[], None] | None = None) -> _Stream:
    job.partial.parent.mkdir(parents=True, exist_ok=True)
    done = existing_partial_bytes(job.partial)
    stream = _Stream(
        job=job, done_bytes=done, hasher=job.digest.new_hasher(), on_restart=on_restart
    )
    if done > job.digest.size_bytes:
        stream.restart()
    elif done:
        hash_file_prefix(job.partial, stream.hasher, done)
    return stream


def _download_timeout_s() -> float:
    return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "10"))


def _get_rest(stream: _Stream, *, on_bytes: BytesCallback, timeout_s: float) -> None:
    """One GET for the bytes not yet on disk, appended to the partial as they arrive."""
    job = stream.job
    headers = dict(job.headers)
    headers["Accept-Encoding"] = "identity"
    if stream.done_bytes:
        headers["Range"] = f"bytes={stream.done_bytes}-"
    with open_get(job.url, headers, timeout_s) as response:
        if response.status == 416 and stream.done_bytes:
            stream.restart()  # the server says our partial is longer than the file
            raise TransientError("the partial file did not fit the remote file; restarting")
        check_status(response, label=job.label, repo_id=job.repo_id)
        if stream.done_bytes and response.status != 206:
            stream.restart()  # Range ignored: the body is the whole file
        _append_body(stream, response.chunks, on_bytes)


def _append_body(stream: _Stream, chunks: Iterator[bytes], on_bytes: BytesCallback) -> None:
    """Write chunks to the partial while another thread hashes them."""
    job = stream.job
    size = job.digest.size_bytes
    hashing = HashThread(stream.hasher)
    try:
        with job.partial.open("ab", buffering=0) as handle:
            writeback = EarlyWriteback(handle.fileno(), stream.done_bytes)
            for chunk in chunks:
                if stream.done_bytes + len(chunk) > size:
                    hashing.finish()
                    stream.restart()
                    raise DownloadFailed(
                        f"{job.label}: the server sent more than the {size} bytes the hub lists",
                        hint="the partial was deleted; run the pull again",
                    )
                _write_all(handle, chunk)
                hashing.update(chunk)
                stream.done_bytes += len(chunk)
                on_bytes(len(chunk))
                writeback.wrote(stream.done_bytes)
            os.fsync(handle.fileno())
    finally:
        hashing.finish()
    if stream.done_bytes < size:
        raise TransientError(f"connection closed at {stream.done_bytes} of {size} bytes")


def _write_all(handle: BinaryIO, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = handle.write(view)
        view = view[written:]


class EarlyWriteback:
    """Ask the kernel to start writing finished stretches of the file to disk
    (Linux ``sync_file_range``), so the fsync before the rename has little left to do."""

    STRETCH_BYTES = 32 * 1024 * 1024

    def __init__(self, fd: int, start_byte: int) -> None:
        self.fd = fd
        self.flushed_to = start_byte
        self._sync_file_range = _sync_file_range_fn()

    def wrote(self, end_byte: int) -> None:
        if self._sync_file_range is None or end_byte - self.flushed_to < self.STRETCH_BYTES:
            return
        self._sync_file_range(self.fd, self.flushed_to, end_byte - self.flushed_to)
        self.flushed_to = end_byte


def _sync_file_range_fn() -> Callable[[int, int, int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    write_flag = 2  # SYNC_FILE_RANGE_WRITE: start writeback, do not wait

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, write_flag)

    return start


class HashThread:
    """Feeds chunks to a hashlib object on a second thread (hashlib releases the GIL),
    so hashing overlaps with the network and the disk."""

    def __init__(self, hasher: hashlib._Hash, depth: int = 32) -> None:
        self.hasher = hasher
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self.thread.start()
        self.finished = False

    def _run(self) -> None:
        update = self.hasher.update
        while (chunk := self.queue.get()) is not None:
            update(chunk)

    def update(self, chunk: bytes) -> None:
        self.queue.put(chunk)

    def finish(self) -> None:
        """Wait until every queued chunk is hashed."""
        if not self.finished:
            self.finished = True
            self.queue.put(None)
            self.thread.join()


def _check_digest(stream: _Stream) -> None:
    job = stream.job
    got = stream.hasher.hexdigest()
    if got == job.digest.hexdigest:
        return
    job.partial.unlink(missing_ok=True)
    raise DownloadFailed(
        f"{job.label}: downloaded bytes fail the {job.digest.kind} check "
        f"(expected {job.digest.hexdigest[:12]}…, got {got[:12]}…); the bad bytes were deleted",
        hint=f"run the pull again; if it repeats, something between you and {hub_endpoint()} "
        "is changing the data",
    )


def _gave_up(job: FetchJob, stream: _Stream, exc: BaseException, failures: int) -> DownloadFailed:
    return DownloadFailed(
        f"{job.label}: {describe_transient(exc)} (gave up after {failures} tries; "
        f"{format_bytes(stream.done_bytes)} kept for resuming)",
        hint="run the same command again to resume",
    )
