"""Where a plan's numbers come from: a local header, remote headers, or catalog figures.

For a hub model only one or two headers are fetched: the requested quant's (or
one quant's, scaled to the other quants' file sizes to choose among them), then
the chosen quant's, so ``plan`` costs a few MB of Range requests however many
quants a repo has.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from localchat.errors import DownloadFailed, ModelNotFound
from localchat.gguf import read_gguf
from localchat.gguf.info import GgufInfo, LayerBytes
from localchat.gguf.quants import quant_in_filename
from localchat.hub.client import is_offline
from localchat.hub.listing import ONE_TRY, list_files
from localchat.hub.ranges import read_remote_gguf
from localchat.planner.synth import info_from_arch
from localchat.reference import ModelRef
from localchat.store.local import find_local

_PART_RE = re.compile(r"\.gguf\.part\d+of\d+$")
_REPACK_TYPE_OF_QUANT = {"Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "IQ4_NL": "IQ4_NL"}


@dataclass(frozen=True)
class QuantSource:
    files: tuple[str, ...]
    size_bytes: int


@dataclass
class ModelSources:
    """Each quant's ``GgufInfo`` for one model, and how they were obtained."""

    name: str
    infos: dict[str, GgufInfo]
    notes: list[str] = field(default_factory=list)
    repo_id: str | None = None
    revision: str = "main"
    quants: dict[str, QuantSource] = field(default_factory=dict)


def scale_info(info: GgufInfo, quant: str, file_bytes: int) -> GgufInfo:
    """Another quant of the same model, estimated by scaling every tensor group."""
    ratio = file_bytes / max(info.file_bytes or info.weights_bytes, 1)
    repack_type = _REPACK_TYPE_OF_QUANT.get(quant.upper())

    def layer(lb: LayerBytes) -> LayerBytes:
        dense, expert = int(lb.dense_bytes * ratio), int(lb.expert_bytes * ratio)
        repack = ((repack_type, int((dense + expert) * 0.9)),) if repack_type else ()
        return LayerBytes(dense, expert, repack)

    return replace(
        info,
        quant=quant,
        files=(),
        file_bytes=file_bytes,
        input_bytes=int(info.input_bytes * ratio),
        layers=tuple(layer(lb) for lb in info.layers),
        output_bytes=int(info.output_bytes * ratio),
        source=f"{info.source}, scaled to {quant}'s file size",
    )


PickQuant = Callable[[Mapping[str, GgufInfo]], str]


def sources_for_ref(
    ref: ModelRef,
    *,
    offline: bool = False,
    pick: PickQuant | None = None,
) -> ModelSources:
    """Quant infos for ``ref``.  ``pick(infos) -> quant`` chooses which quant to read
    exactly when several are offered (the planner's choice on scaled estimates).
    ``HF_HUB_OFFLINE=1`` counts as ``offline``."""
    offline = offline or is_offline()
    if ref.kind == "path":
        return _from_path(ref)
    entry = ref.entry
    if entry is not None and entry.gguf is None:
        return _from_pip(ref)
    if entry is not None and entry.gguf is not None:
        repo, revision = entry.gguf.repo, entry.gguf.revision
        quants = {q: QuantSource(qf.files, qf.size_bytes) for q, qf in entry.gguf.quants.items()}
    else:
        repo, revision = ref.repo_id or "", "main"
        if offline:
            raise DownloadFailed(f"{repo} is not in the catalog", hint="plan it when online")
        quants = list_repo_quants(repo, revision)
    quants = _only_requested(quants, ref.quant, repo)
    sources = ModelSources(
        name=ref.display_name, infos={}, repo_id=repo, revision=revision, quants=quants
    )
    why = "offline"
    if not offline:
        try:
            return _from_hub(sources, pick)
        except DownloadFailed as exc:
            if entry is None:
                raise
            why = f"hub unreachable ({exc.message})"
    return _from_catalog(sources, ref, why)


def _only_requested(
    quants: dict[str, QuantSource], quant: str | None, repo: str
) -> dict[str, QuantSource]:
    if quant is None:
        return quants
    match = {q: s for q, s in quants.items() if q.upper() == quant.upper()}
    if not match:
        have = ", ".join(sorted(quants)) or "none"
        raise ModelNotFound(f"{repo} has no quant {quant}", hint=f"it has {have}")
    return match


def _from_path(ref: ModelRef) -> ModelSources:
    path = ref.path or Path(ref.text)
    if not path.is_file():
        raise ModelNotFound(f"no such file: {path}", hint="check the path to the .gguf")
    info = read_gguf(path)
    quant = quant_in_filename(path.name) or info.quant or "file"
    return ModelSources(path.name, {quant: info}, ["read the file's GGUF header"])


def _from_pip(ref: ModelRef) -> ModelSources:
    entry = ref.entry
    assert entry is not None and entry.pip is not None
    local = find_local(ref)
    if local is not None:
        return ModelSources(
            entry.name,
            {entry.pip.quant: read_gguf(local.path)},
            [f"read the GGUF header of {local.path.name}"],
        )
    info = info_from_arch(
        entry.arch,
        quant=entry.pip.quant,
        file_bytes=entry.pip.size_bytes,
        family=entry.family,
        model_name=entry.name,
        pooling=entry.embedding.pooling if entry.embedding else None,
    )
    note = f"{entry.pip.package} is not installed: planned from models.toml's recorded figures"
    return ModelSources(entry.name, {entry.pip.quant: info}, [note])


def _from_hub(sources: ModelSources, pick: PickQuant | None) -> ModelSources:
    repo, revision, quants = sources.repo_id or "", sources.revision, sources.quants

    def read(quant: str) -> GgufInfo:
        info = read_remote_gguf(repo, quants[quant].files, revision)
        return replace(info, file_bytes=info.file_bytes or quants[quant].size_bytes, quant=quant)

    first = min(quants, key=lambda q: quants[q].size_bytes)
    exact = {first: read(first)}
    infos = {
        q: exact[first] if q == first else scale_info(exact[first], q, s.size_bytes)
        for q, s in quants.items()
    }
    chosen = pick(infos) if pick and len(infos) > 1 else first
    if chosen not in exact:
        exact[chosen] = infos[chosen] = read(chosen)
    sources.infos = infos
    sources.notes.append(
        f"read the remote GGUF header of {', '.join(sorted(exact))} from {repo}"
        + ("; other quants scaled by file size" if len(infos) > len(exact) else "")
    )
    return sources


def _from_catalog(sources: ModelSources, ref: ModelRef, why: str) -> ModelSources:
    entry = ref.entry
    assert entry is not None
    sources.infos = {
        q: info_from_arch(
            entry.arch,
            quant=q,
            file_bytes=s.size_bytes,
            files=s.files,
            model_name=entry.name,
            family=entry.family,
            pooling=entry.embedding.pooling if entry.embedding else None,
        )
        for q, s in sources.quants.items()
    }
    sources.notes.append(f"remote headers not read: {why}")
    return sources


def list_repo_quants(repo_id: str, revision: str = "main") -> dict[str, QuantSource]:
    """GGUF files of a hub repo grouped by quant (split parts together; mmproj left out)."""
    grouped: dict[str, list[tuple[str, int]]] = {}
    for path, size in repo_files(repo_id, revision):
        is_gguf = path.endswith(".gguf") or _PART_RE.search(path)
        if not is_gguf or "mmproj" in path.lower():
            continue
        quant = quant_in_filename(Path(path).name) or quant_in_filename(path)
        if quant:
            grouped.setdefault(quant, []).append((path, size))
    if not grouped:
        raise ModelNotFound(f"{repo_id} has no GGUF files", hint="is it a GGUF repo?")
    return {
        q: QuantSource(tuple(sorted(p for p, _ in files)), sum(s for _, s in files))
        for q, files in grouped.items()
    }


def repo_files(repo_id: str, revision: str) -> list[tuple[str, int]]:
    """(path, size) of every file, from the hub's listing: one try, no retry loop, so an
    unreachable hub fails fast (``plan`` then says so) instead of backing off for 20 s."""
    return [(f.path, f.size_bytes) for f in list_files(repo_id, revision, policy=ONE_TRY)]
