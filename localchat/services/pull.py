"""Pull a model: which repo, which format and quant, then the hub downloads it.

The formats (``engine.registry``) say which repo of a catalog entry holds them and which
files of a listing make up a quant; the planner chooses the quant when none is asked;
the hub lists, downloads, verifies and records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from localchat.engine.registry import ModelFormat, formats_for_quant, model_formats
from localchat.errors import ModelNotFound
from localchat.hardware import detect_hardware
from localchat.hub import HubSource, Listing, ProgressCallback, Selection, pull
from localchat.hub.client import is_offline, repo_page
from localchat.planner import choose_quant
from localchat.services.resolve import ModelRef, find_on_disk, resolve_model
from localchat.store import LocalModel


def pull_model(
    model: str | ModelRef,
    *,
    progress: ProgressCallback | None = None,
    update: bool = False,
) -> LocalModel:
    """Download MODEL into the HF cache (resumable, verified) and return its files.

    A model that is not the hub's (a path, a pip-delivered model) is returned when it is
    on disk.  A repo stays on the commit its first pull resolved (``update=True`` follows
    its branch again).  ``progress`` gets ``PullProgress`` events; raising from it stops
    the pull (the partial file is kept for the next one).
    """
    ref, _ = resolve_model(model)
    if ref.kind == "path" or _pip_only(ref):
        local = find_on_disk(ref)
        return local if local is not None else _not_downloadable(ref)
    if is_offline():
        local = find_on_disk(ref)
        if local is not None:
            return local
    return _pull_from_hub(ref, progress=progress, update=update)


def ensure_local(
    ref: ModelRef, *, allow_download: bool = True, progress: ProgressCallback | None = None
) -> LocalModel:
    """MODEL's files on disk, pulling them first when missing (and allowed).

    ``ModelNotFound`` for an unknown name or quant, or a model missing with
    ``allow_download=False`` or ``HF_HUB_OFFLINE=1``; else the pull's errors.
    """
    local = find_on_disk(ref)
    if local is not None:
        return local
    if ref.kind == "path" or _pip_only(ref):
        return _not_downloadable(ref)
    if not allow_download:
        raise ModelNotFound(
            f"{ref.display_name} is not on disk", hint=f"run `localchat pull {ref.text}`"
        )
    if is_offline():
        raise ModelNotFound(
            f"{ref.display_name} is not on disk and HF_HUB_OFFLINE=1 is set",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    return _pull_from_hub(ref, progress=progress)


def _pip_only(ref: ModelRef) -> bool:
    """A catalog model that no format's hub repo holds (it comes with a pip package)."""
    entry = ref.entry
    return entry is not None and not any(fmt.catalog_repo(entry) for fmt in model_formats())


def _not_downloadable(ref: ModelRef) -> LocalModel:
    if ref.kind == "path":
        raise ModelNotFound(f"no such file: {ref.path}")
    package = ref.entry.pip.package if ref.entry is not None and ref.entry.pip else None
    raise ModelNotFound(
        f"{ref.display_name} is not installed",
        hint=f"pip install {package}" if package else None,
    )


def _pull_from_hub(
    ref: ModelRef, *, progress: ProgressCallback | None = None, update: bool = False
) -> LocalModel:
    formats, source = hub_source(ref)
    chooser = _FormatChoice(ref, formats)
    return pull(source, chooser.select, progress=progress, update=update, check=chooser.check)


def hub_source(ref: ModelRef) -> tuple[tuple[ModelFormat, ...], HubSource]:
    """The formats MODEL may be in, and the repo and revision to pull it from."""
    entry = ref.entry
    formats = formats_for_quant(ref.quant)
    if ref.kind == "hub" and ref.repo_id is not None:
        repos = [fmt.catalog_repo(entry) for fmt in model_formats()] if entry else []
        pinned = [rev for repo, rev in filter(None, repos) if repo.lower() == ref.repo_id.lower()]
        revision = pinned[0] if pinned else "main"
        return formats, HubSource(ref.repo_id, ref.repo_id, revision, ref.display_name)
    if entry is None:
        raise ModelNotFound(f"{ref.text!r} is not a hub model")
    for fmt in formats:
        repo = fmt.catalog_repo(entry)
        if repo is not None:
            return (fmt,), HubSource(entry.name, repo[0], repo[1], ref.display_name)
    raise ModelNotFound(
        f"{entry.name} is not downloaded from the hub", hint="install it with pip instead"
    )


class _FormatChoice:
    """Picks the files of a listing with the first format that finds its files there,
    and checks the download with that format."""

    def __init__(self, ref: ModelRef, formats: Sequence[ModelFormat]) -> None:
        self.ref = ref
        self.formats = formats
        self.chosen: ModelFormat | None = None

    def select(self, listing: Listing) -> Selection:
        entry = self.ref.entry
        for fmt in self.formats:
            selection = fmt.select(listing, self.ref.quant, entry, self.choose_quant)
            if selection is not None:
                self.chosen = fmt
                return selection
        kinds = ", ".join(fmt.files_hint for fmt in self.formats)
        raise ModelNotFound(
            f"{listing.repo_id} has no model files localchat runs ({kinds})",
            hint=f"see {repo_page(listing.repo_id)}/tree/main",
        )

    def choose_quant(self, sizes: Mapping[str, int]) -> str:
        """The planner's choice for this machine among the quants on offer."""
        entry = self.ref.entry
        arch = entry.arch if entry is not None else None
        family = entry.family if entry is not None else ""
        pooling = entry.embedding.pooling if entry is not None and entry.embedding else None
        return choose_quant(sizes, arch, detect_hardware(), family=family, pooling=pooling)

    def check(self, paths: tuple[Path, ...]) -> None:
        if self.chosen is not None:
            self.chosen.check_files(paths)
