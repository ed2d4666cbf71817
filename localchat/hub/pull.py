"""``pull``: resolve a repo's files on the hub and download what is missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from localchat.hub.client import is_offline
from localchat.hub.fetch import check_disk_space, fetch_model
from localchat.hub.layout import RepoCache, cache_write_error
from localchat.hub.progress import ProgressCallback, PullProgress
from localchat.hub.resolve import HubSource, ResolvedModel, Select, resolve
from localchat.hub.tracker import ProgressTracker
from localchat.store import LocalModel
from localchat.store.registry import PulledModel, pinned_commit, save_pulled
from localchat.units import format_bytes

CheckFiles = Callable[[tuple[Path, ...]], None]  # a format's check of downloaded files


def pull(
    source: HubSource,
    select: Select,
    *,
    progress: ProgressCallback | None = None,
    update: bool = False,
    check: CheckFiles | None = None,
) -> LocalModel:
    """Resolve ``source`` on the hub and download what is missing into the HF cache.

    A repo stays on the commit its first pull resolved (``update=True`` follows the
    branch again).  Partial downloads resume; every file is verified before it appears in
    the snapshot, and ``check`` (the format's) sees them before the pull is recorded.
    """
    resolved = resolve_pinned(source, select, update=update, progress=progress)
    tracker = ProgressTracker(
        progress, total_bytes=resolved.size_bytes, file_count=len(resolved.files)
    )
    try:
        check_disk_space(resolved)
        paths = fetch_model(resolved, tracker)
    except OSError as exc:  # the cache folder: full, read-only, or not a folder
        raise cache_write_error(exc) from exc
    if check is not None:
        check(paths)
    save_pulled(_record(resolved))
    if progress is not None:
        progress(_done_event(resolved, tracker))
    repo = RepoCache.for_repo(resolved.repo_id)
    opened = repo.pointer(resolved.commit, resolved.opens) if resolved.opens else None
    return LocalModel(
        name=resolved.name,
        format=resolved.format,
        path=opened or repo.snapshot_dir(resolved.commit),
        files=paths,
        quant=resolved.quant,
        source="hub",
        repo_id=resolved.repo_id,
        revision=resolved.commit,
    )


def resolve_pinned(
    source: HubSource,
    select: Select,
    *,
    update: bool = False,
    progress: ProgressCallback | None = None,
) -> ResolvedModel:
    commit = None if update else pinned_commit(source.repo_id, source.revision)
    if progress is not None and not is_offline():
        progress(_stage_event(f"resolving {source.label} on the hub"))
    return resolve(source, select, commit=commit)


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
        opens=resolved.opens,
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
