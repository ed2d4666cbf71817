"""A resumable, verified HTTP Range download into a partial file.

The partial file is kept on any failure, Ctrl-C or kill; the next attempt
re-hashes what is there and asks the server for the rest with ``Range``.  The
sha256 (or git sha1) is computed while the bytes stream in, and a mismatch
deletes the partial.  The caller renames the verified partial into place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localchat.errors import DownloadFailed
from localchat.hub.client import (
    RetryPolicy,
    TransientError,
    describe_transient,
    hub_endpoint,
    hub_errors,
    is_transient,
)
from localchat.hub.verify import ExpectedDigest, hash_file_prefix

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
    hasher: object

    def restart(self) -> None:
        with self.job.partial.open("wb"):
            pass
        self.done_bytes = 0
        self.hasher = self.job.digest.new_hasher()


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
) -> Path:
    """Download ``job`` into ``job.partial`` (resuming), verify it, return the partial path."""
    policy = policy or RetryPolicy.from_env()
    stream = _open_stream(job)
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


def _open_stream(job: FetchJob) -> _Stream:
    job.partial.parent.mkdir(parents=True, exist_ok=True)
    done = existing_partial_bytes(job.partial)
    stream = _Stream(job=job, done_bytes=done, hasher=job.digest.new_hasher())
    if done > job.digest.size_bytes:
        stream.restart()
    elif done:
        hash_file_prefix(job.partial, stream.hasher, done)
    return stream


def _download_timeout_s() -> float:
    return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "10"))


def _get_rest(stream: _Stream, *, on_bytes: BytesCallback, timeout_s: float) -> None:
    """One GET for the bytes not yet on disk, appended to the partial as they arrive."""
    import httpx2
    from huggingface_hub.utils import get_session, hf_raise_for_status

    job = stream.job
    headers = dict(job.headers)
    headers["Accept-Encoding"] = "identity"
    if stream.done_bytes:
        headers["Range"] = f"bytes={stream.done_bytes}-"
    timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 30.0))
    with (
        hub_errors(job.label, repo_id=job.repo_id or None),
        get_session().stream(
            "GET", job.url, headers=headers, timeout=timeout, follow_redirects=True
        ) as response,
    ):
        if response.status_code == 416 and stream.done_bytes:
            stream.restart()  # the server says our partial is longer than the file
            raise TransientError("the partial file did not fit the remote file; restarting")
        hf_raise_for_status(response)
        if stream.done_bytes and response.status_code != 206:
            stream.restart()  # Range ignored: the body is the whole file
        _append_body(stream, response, on_bytes)


def _append_body(stream: _Stream, response, on_bytes: BytesCallback) -> None:
    job = stream.job
    size = job.digest.size_bytes
    update = stream.hasher.update
    with job.partial.open("ab", buffering=0) as handle:
        for chunk in response.iter_bytes():
            if stream.done_bytes + len(chunk) > size:
                stream.restart()
                raise DownloadFailed(
                    f"{job.label}: the server sent more than the {size} bytes the hub lists",
                    hint="the partial was deleted; run the pull again",
                )
            handle.write(chunk)
            update(chunk)
            stream.done_bytes += len(chunk)
            on_bytes(len(chunk))
        os.fsync(handle.fileno())
    if stream.done_bytes < size:
        raise TransientError(f"connection closed at {stream.done_bytes} of {size} bytes")


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
    from localchat.hub.progress import format_bytes

    return DownloadFailed(
        f"{job.label}: {describe_transient(exc)} (gave up after {failures} tries; "
        f"{format_bytes(stream.done_bytes)} kept for resuming)",
        hint="run the same command again to resume",
    )
