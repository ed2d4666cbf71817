"""What hub search read about a repo at one commit, kept under the data dir.

A repo's files and headers at a commit never change, so a search reads each repo once:
its quants (files and sizes) and the GGUF headers it read, or its AWQ figures, or that it
has nothing localchat runs.  One JSON file per repo (``<data>/hub-search/owner--name.json``)
holds the latest commit seen; a file that does not parse as this version wrote it is
ignored and replaced.  The planner runs on these facts for each search, so a what-if
machine or a new ``localchat bench`` needs no new download.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localchat.gguf.info import GgufInfo, LayerBytes
from localchat.jsonfile import read_json, write_text_atomic
from localchat.paths import data_dir
from localchat.planner.awq import ArchFromConfig, AwqFigures
from localchat.planner.sources import QuantSource

CACHE_VERSION = 1
MAX_CACHED_REPOS = 1000  # the oldest files go past this many


@dataclass
class RepoFacts:
    """A repo at one commit as far as it was read.  ``quants`` set: GGUF quants (``infos``
    holds the headers read so far); ``checkpoint`` set: AWQ figures; ``nothing`` set: why
    it has no model localchat runs."""

    quants: dict[str, QuantSource] | None = None
    infos: dict[str, GgufInfo] = field(default_factory=dict)
    checkpoint: AwqFigures | None = None
    nothing: str = ""


def cache_dir() -> Path:
    return data_dir() / "hub-search"


def _path(repo_id: str) -> Path:
    # repo ids are checked (hub.search.check_repo_id): no "/" left, no "..", no "--"
    return cache_dir() / f"{repo_id.replace('/', '--')}.json"


def load_facts(repo_id: str, commit: str) -> RepoFacts | None:
    """The facts saved for ``repo_id`` at ``commit``; None when none (or unreadable)."""
    document = read_json(_path(repo_id))
    if document.get("version") != CACHE_VERSION or document.get("commit") != commit:
        return None
    try:
        return _facts_from_json(document)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def save_facts(repo_id: str, commit: str, facts: RepoFacts) -> None:
    """Replace the file for ``repo_id`` (atomically); a full disk only costs the cache."""
    document = {"version": CACHE_VERSION, "repo": repo_id, "commit": commit, **_to_json(facts)}
    try:
        write_text_atomic(_path(repo_id), json.dumps(document, separators=(",", ":")))
        _prune(cache_dir())
    except OSError:
        pass


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for stale in files[: max(0, len(files) - MAX_CACHED_REPOS)]:
        stale.unlink(missing_ok=True)


def _to_json(facts: RepoFacts) -> dict[str, Any]:
    quants = facts.quants
    return {
        "quants": None
        if quants is None
        else {q: {"files": list(s.files), "size": s.size_bytes} for q, s in quants.items()},
        "infos": {q: dataclasses.asdict(info) for q, info in facts.infos.items()},
        "checkpoint": None if facts.checkpoint is None else dataclasses.asdict(facts.checkpoint),
        "nothing": facts.nothing,
    }


def _facts_from_json(document: dict[str, Any]) -> RepoFacts:
    quants = document["quants"]
    checkpoint = document["checkpoint"]
    return RepoFacts(
        quants=None
        if quants is None
        else {
            str(q): QuantSource(tuple(map(str, s["files"])), _int(s["size"]))
            for q, s in quants.items()
        },
        infos={str(q): _info(value) for q, value in document["infos"].items()},
        checkpoint=None if checkpoint is None else _figures(checkpoint),
        nothing=str(document["nothing"]),
    )


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def _info(value: dict[str, Any]) -> GgufInfo:
    fields = dict(value)
    for name in ("files", "n_head", "n_head_kv", "swa_layers"):
        fields[name] = tuple(fields[name])
    fields["layers"] = tuple(_layer(layer) for layer in fields["layers"])
    return GgufInfo(**fields)


def _layer(value: dict[str, Any]) -> LayerBytes:
    return LayerBytes(
        dense_bytes=_int(value["dense_bytes"]),
        expert_bytes=_int(value["expert_bytes"]),
        repackable_bytes_by_type=_pairs(value["repackable_bytes_by_type"]),
        expert_repackable_bytes_by_type=_pairs(value["expert_repackable_bytes_by_type"]),
    )


def _pairs(value: list[list[Any]]) -> tuple[tuple[str, int], ...]:
    return tuple((str(name), _int(n_bytes)) for name, n_bytes in value)


def _figures(value: dict[str, Any]) -> AwqFigures:
    fields = dict(value)
    fields["arch"] = ArchFromConfig(**fields["arch"])
    fields["files"] = tuple(fields["files"])
    return AwqFigures(**fields)
