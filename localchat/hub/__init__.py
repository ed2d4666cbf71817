"""The hub: resolve repo files for a quant, resumable verified downloads into the HF cache.

Public API::

    ensure_local(ref, *, allow_download=True, progress=None) -> LocalModel
    pull(ref, *, progress=None, update=False) -> LocalModel
    resolve(ref, *, commit=None) -> ResolvedModel
    PullProgress, ProgressCallback, StderrProgress
"""

from localchat.hub.progress import ProgressCallback, PullProgress, StderrProgress
from localchat.hub.pull import ensure_local, pull
from localchat.hub.resolve import QuantGroup, RemoteFile, ResolvedModel, resolve

resolve_files = resolve  # the name docs/ARCHITECTURE.md uses

__all__ = [
    "ProgressCallback",
    "PullProgress",
    "QuantGroup",
    "RemoteFile",
    "ResolvedModel",
    "StderrProgress",
    "ensure_local",
    "pull",
    "resolve",
    "resolve_files",
]
