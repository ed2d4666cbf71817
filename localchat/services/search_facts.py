"""The planner's plan for one hub repo at one commit, from facts read once and cached.

The steps are ``localchat plan owner/repo``'s (``planner.sources``): list the repo's GGUF
quants; read the smallest quant's header by HTTP Range and scale it to the other quants'
file sizes; let the planner choose; read the chosen quant's header and plan again.  A repo
without GGUF files is planned as AWQ when its config says so (``planner.awq_ref``).  What
was read is kept per repo and commit (``search_cache``), so the next search, or the same
search for a what-if machine, plans without the network.

A hostile listing is bounded here too: a quant split into more than ``MAX_PARTS`` files,
or a checkpoint of more than ``MAX_PARTS`` shards, is refused before any header is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from localchat.errors import (
    AuthRequired,
    CorruptModelFile,
    DownloadFailed,
    LocalchatError,
    ModelNotFound,
)
from localchat.gguf.info import GgufInfo
from localchat.hardware import Hardware
from localchat.hub.ranges import read_remote_checkpoint, read_remote_gguf
from localchat.planner import Plan, PlanRequest, plan_model
from localchat.planner.awq import AwqFigures, plan_awq, require_awq
from localchat.planner.sources import list_repo_quants, repo_files, scale_info
from localchat.services.search_cache import RepoFacts, load_facts, save_facts

MAX_PARTS = 64  # files of one quant (split GGUF) or shards of one checkpoint
RUNS_NOTHING = "no GGUF files and no AWQ checkpoint"
UNSAFE_PREFIX = "the hub sent an unsafe"  # hub.names.unsafe_name


def plan_repo(repo_id: str, commit: str | None, hardware: Hardware, request: PlanRequest) -> Plan:
    """The plan ``localchat plan repo_id`` would make, for the repo at ``commit`` (None:
    ``main``, not cached).  Raises the hub's and the planner's errors."""
    revision = commit or "main"
    facts = (load_facts(repo_id, commit) if commit else None) or RepoFacts()
    known = dict(facts.infos)
    listed = facts.quants is None and facts.checkpoint is None and not facts.nothing
    if listed:
        _read_repo(repo_id, revision, facts)
    try:
        return _plan(repo_id, revision, facts, hardware, request)
    finally:  # what was read is kept even when planning failed (a gated header, say)
        if commit and (listed or facts.infos != known):
            save_facts(repo_id, commit, facts)


def _read_repo(repo_id: str, revision: str, facts: RepoFacts) -> None:
    """List the repo: its GGUF quants, else its AWQ checkpoint, else why it has neither."""
    try:
        facts.quants = list_repo_quants(repo_id, revision)
        return
    except ModelNotFound:
        pass  # no GGUF files, or no such repo: the listing below says which
    files = [path for path, _size in repo_files(repo_id, revision)]
    shards = [f for f in files if f.endswith(".safetensors") and "/" not in f]
    if not shards or "config.json" not in files:
        facts.nothing = RUNS_NOTHING
        return
    _check_parts(repo_id, "its checkpoint", len(shards))
    checkpoint = read_remote_checkpoint(repo_id, files, revision)
    try:
        require_awq(checkpoint)
    except ModelNotFound:
        facts.nothing = f"{RUNS_NOTHING} (quant_method: {checkpoint.quant_method or 'none'})"
        return
    facts.checkpoint = AwqFigures.from_checkpoint(checkpoint)


def _plan(
    repo_id: str, revision: str, facts: RepoFacts, hardware: Hardware, request: PlanRequest
) -> Plan:
    if facts.nothing:
        raise ModelNotFound(facts.nothing)
    if facts.checkpoint is not None:
        plan = plan_awq(facts.checkpoint, hardware, replace(request, quant=None))
        plan.reasons.append(
            f"read config.json and the safetensors headers from {repo_id} by HTTP Range"
        )
        return plan
    assert facts.quants is not None
    return _plan_quants(repo_id, revision, facts, hardware, request)


def _plan_quants(
    repo_id: str, revision: str, facts: RepoFacts, hardware: Hardware, request: PlanRequest
) -> Plan:
    """``planner.sources``' way: one exact header, the rest scaled, then the chosen one."""
    quants = facts.quants or {}
    first = min(quants, key=lambda q: quants[q].size_bytes)
    exact = {first: _header(repo_id, revision, facts, first)}
    infos: dict[str, GgufInfo] = {
        q: exact[first] if q == first else scale_info(exact[first], q, s.size_bytes)
        for q, s in quants.items()
    }
    chosen = _pick(infos, hardware, request) if len(infos) > 1 else first
    if chosen not in exact:
        exact[chosen] = infos[chosen] = _header(repo_id, revision, facts, chosen)
    plan = plan_model(infos, hardware, request, model_name=repo_id)
    plan.reasons.append(
        f"read the remote GGUF header of {', '.join(sorted(exact))} from {repo_id}"
        + ("; other quants scaled by file size" if len(infos) > len(exact) else "")
    )
    return plan


def _pick(infos: Mapping[str, GgufInfo], hardware: Hardware, request: PlanRequest) -> str:
    return plan_model(infos, hardware, request).quant or next(iter(infos))


def _header(repo_id: str, revision: str, facts: RepoFacts, quant: str) -> GgufInfo:
    """The quant's header: from the cache, else read by HTTP Range (and remembered)."""
    cached = facts.infos.get(quant)
    if cached is not None:
        return cached
    source = (facts.quants or {})[quant]
    _check_parts(repo_id, quant, len(source.files))
    info = read_remote_gguf(repo_id, source.files, revision)
    info = replace(info, file_bytes=info.file_bytes or source.size_bytes, quant=quant)
    facts.infos[quant] = info
    return info


class RefusedListing(DownloadFailed):
    """A repo listing localchat will not act on (too many parts to read)."""


def _check_parts(repo_id: str, what: str, n_files: int) -> None:
    if n_files > MAX_PARTS:
        raise RefusedListing(
            f"{repo_id}: {what} is split into {n_files} files; at most {MAX_PARTS} are read",
            hint="check HF_ENDPOINT: only trusted hubs should answer it",
        )


def error_kind(error: LocalchatError) -> str:
    """What a failed plan means for a search result: gated, nothing to run, refused
    (a hostile or broken answer), or the hub failed."""
    if isinstance(error, AuthRequired):
        return "gated"
    if isinstance(error, ModelNotFound):
        return "nothing to run"
    hostile = error.message.startswith(UNSAFE_PREFIX)
    if isinstance(error, CorruptModelFile | RefusedListing) or hostile:
        return "refused"
    return "hub failed"
