"""Which files make up one GGUF quant: in a hub listing, in models.toml, in a snapshot.

Layouts (see docs/models.md):

* single file             ``Model-Q4_K_M.gguf``
* llama.cpp splits        ``Model-Q8_0-00001-of-00002.gguf`` at the root, in ``Model-Q8_0/``,
                          or in a folder literally named ``Model-Q8_0.gguf/``
* concatenated pieces     ``Model.Q6_K.gguf.part1of2`` ... joined into ``Model.Q6_K.gguf``
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from localchat.errors import ModelNotFound
from localchat.gguf.quants import PARTS_RE, classify_gguf_path, quality_rank, quant_in_stem
from localchat.hub import Layout, RemoteFile
from localchat.units import format_bytes


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


def joined_name(piece_path: str) -> str:
    match = PARTS_RE.match(piece_path)
    return match.group("joined") if match else piece_path


def local_names(files: tuple[str, ...]) -> tuple[str, ...]:
    """A quant's files as they sit in a snapshot: ``.partXofY`` pieces as their one
    joined file (in the pieces' folder)."""
    folder, _, first = files[0].rpartition("/")
    match = PARTS_RE.match(first)
    if match is None:
        return files
    return (f"{folder}/{match.group('joined')}" if folder else match.group("joined"),)


def group_gguf_files(files: Iterable[RemoteFile]) -> list[QuantGroup]:
    """Every complete quant group in the repo (incomplete split sets are left out)."""
    buckets: dict[tuple[str, Layout, int], dict[int, RemoteFile]] = defaultdict(dict)
    for remote in files:
        classified = classify_gguf_path(remote.path)
        if classified is None:
            continue
        stem, layout, number, count = classified
        buckets[(stem, _layout(layout), count)][number] = remote
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


def _layout(name: str) -> Layout:
    return "parts" if name == "parts" else "split" if name == "split" else "single"


def group_for_files(files: list[RemoteFile], quant: str) -> QuantGroup:
    """The group made of exactly these files (a catalog entry's list)."""
    if len(files) == 1:
        return QuantGroup(quant, files[0].path[: -len(".gguf")], "single", tuple(files))
    layout: Layout = "parts" if PARTS_RE.match(files[0].name) else "split"
    return QuantGroup(quant, files[0].path, layout, tuple(files))


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
    return ", ".join(
        f"{quant} ({format_bytes(size)})" for quant, size in quant_sizes(groups).items()
    )


def quant_sizes(groups: list[QuantGroup]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for group in groups:
        sizes.setdefault(group.quant, group.size_bytes)
    return sizes


def snapshot_groups(snapshot: Path) -> dict[str, list[Path]]:
    """A snapshot's GGUF files grouped by stem (a split's parts together)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(snapshot.rglob("*.gguf")):
        if not path.exists():
            continue
        classified = classify_gguf_path(path.relative_to(snapshot).as_posix())
        if classified is not None:
            groups.setdefault(classified[0], []).append(path)
    return groups
