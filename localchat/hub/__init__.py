"""The hub: repo listings, resumable verified downloads into the HF cache, remote headers.

Public API::

    pull(source, select, *, progress=None, update=False, check=None) -> LocalModel
    resolve(source, select, *, commit=None) -> ResolvedModel
    list_files(repo_id, revision, *, policy=None) -> list[RemoteFile]
    HubSource, Selection, Listing, RemoteFile, PullProgress, ProgressCallback, StderrProgress

Which files of a repo make up a model is the model format's choice (``engine.registry``),
handed in as ``select``; which quant to pull is the planner's, made by the services.
"""

from localchat.hub.listing import ONE_TRY, Listing, RemoteFile, fetch_listing, list_files
from localchat.hub.progress import ProgressCallback, PullProgress, StderrProgress
from localchat.hub.pull import CheckFiles, pull
from localchat.hub.resolve import HubSource, Layout, ResolvedModel, Select, Selection, resolve

__all__ = [
    "ONE_TRY",
    "CheckFiles",
    "HubSource",
    "Layout",
    "Listing",
    "ProgressCallback",
    "PullProgress",
    "RemoteFile",
    "ResolvedModel",
    "Select",
    "Selection",
    "StderrProgress",
    "fetch_listing",
    "list_files",
    "pull",
    "resolve",
]
