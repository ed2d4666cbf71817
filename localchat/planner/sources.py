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
from urllib.parse import quote

from localchat.errors import DownloadFailed, ModelNotFound
from localchat.gguf.info import GgufInfo, LayerBytes
from localchat.reference import ModelRef

_SPLIT_RE = re.compile(r"-\d{5}-of-\d{5}\.gguf$")
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


def sources_for_ref(
    ref: ModelRef,
    *,
    offline: bool = False,
    pick: Callable[[Mapping[str, GgufInfo]], str] | None = None,
) -> ModelSources:
    """Quant infos for ``ref``.  ``pick(infos) -> quant`` chooses which quant to read
    exactly when several are offered (the planner's choice on scaled estimates).
    ``HF_HUB_OFFLINE=1`` counts as ``offline``."""
    offline = offline or _hub_offline()
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


def _hub_offline() -> bool:
    import os

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "on", "yes", "true"}


def _only_requested(quants: dict[str, QuantSource], quant: str | None, repo: str):
    if quant is None:
        return quants
    match = {q: s for q, s in quants.items() if q.upper() == quant.upper()}
    if not match:
        have = ", ".join(sorted(quants)) or "none"
        raise ModelNotFound(f"{repo} has no quant {quant}", hint=f"it has {have}")
    return match


def _from_path(ref: ModelRef) -> ModelSources:
    from localchat.gguf import read_gguf
    from localchat.gguf.quants import quant_in_filename

    path = ref.path or Path(ref.text)
    if not path.is_file():
        raise ModelNotFound(f"no such file: {path}", hint="check the path to the .gguf")
    info = read_gguf(path)
    quant = quant_in_filename(path.name) or info.quant or "file"
    return ModelSources(path.name, {quant: info}, ["read the file's GGUF header"])


def _from_pip(ref: ModelRef) -> ModelSources:
    from localchat.gguf import read_gguf
    from localchat.planner.synth import info_from_arch
    from localchat.store.local import find_local

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
    )
    note = f"{entry.pip.package} is not installed: planned from models.toml's recorded figures"
    return ModelSources(entry.name, {entry.pip.quant: info}, [note])


def _from_hub(sources: ModelSources, pick) -> ModelSources:
    from localchat.hub.ranges import read_remote_gguf

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
    from localchat.planner.synth import info_from_arch

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
        )
        for q, s in sources.quants.items()
    }
    sources.notes.append(f"remote headers not read: {why}")
    return sources


def list_repo_quants(repo_id: str, revision: str = "main") -> dict[str, QuantSource]:
    """GGUF files of a hub repo grouped by quant (split parts together; mmproj left out)."""
    from localchat.gguf.quants import quant_in_filename

    grouped: dict[str, list[tuple[str, int]]] = {}
    for path, size in _repo_files(repo_id, revision):
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


def _repo_files(repo_id: str, revision: str) -> list[tuple[str, int]]:
    """(path, size) of every file, from the hub's tree API: one try, no retry loop, so an
    unreachable hub fails fast (``plan`` then says so) instead of backing off for 20 s."""
    from huggingface_hub import get_session

    from localchat.hub.client import hub_endpoint, network_error, status_error
    from localchat.hub.ranges import TIMEOUT_S, auth_headers

    url = f"{hub_endpoint()}/api/models/{repo_id}/tree/{quote(revision, safe='')}?recursive=true"
    files: list[tuple[str, int]] = []
    while url:
        try:
            response = get_session().get(url, headers=auth_headers(None), timeout=TIMEOUT_S)
        except Exception as exc:  # network boundary: any transport error becomes one line
            raise network_error(
                exc,
                f"cannot list {repo_id} on the hub",
                hint="check the network; catalog models also plan offline",
            ) from exc
        if response.status_code != 200:
            raise status_error(response.status_code, f"listing {repo_id}", repo_id=repo_id)
        files += [
            (item["path"], int((item.get("lfs") or {}).get("size") or item.get("size") or 0))
            for item in response.json()
            if isinstance(item, dict) and item.get("type") == "file" and "path" in item
        ]
        url = _next_link(response.headers.get("link", ""))
    return files


def _next_link(link_header: str) -> str:
    match = re.search(r'<([^>]+)>;\s*rel="next"', link_header)
    return match.group(1) if match else ""
