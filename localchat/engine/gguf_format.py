"""GGUF on llama.cpp, registered as a third-party format would be (``engine.registry``).

This module knows GGUF files (magic, splits, ``.partXofY`` pieces, quant names) and hands
loading to ``engine.load_backend`` with ``LlamaSettings``; the llama.cpp backend itself
is ``engine.llama``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from localchat.catalog import CatalogEntry
from localchat.engine.base import LoadSettings
from localchat.engine.embedding import LlamaEmbedSettings, llama_embed_settings
from localchat.engine.gguf_files import (
    QuantGroup,
    group_for_files,
    group_gguf_files,
    local_names,
    pick_group,
    quant_sizes,
    snapshot_groups,
)
from localchat.engine.registry import ChooseQuant, ModelFacts, Registry
from localchat.engine.settings import LlamaSettings, llama_settings
from localchat.errors import CorruptModelFile, ModelNotFound
from localchat.gguf import read_gguf_metadata, validate_gguf
from localchat.gguf.quants import quality_rank, quant_in_filename, quant_in_stem
from localchat.hardware.types import Hardware
from localchat.hub import Listing, Selection
from localchat.planner import Plan, PlanRequest, plan_for_file
from localchat.store import FileGroup, LocalModel

GGUF_MAGIC = b"GGUF"
BACKEND = "localchat.engine.llama:LlamaBackend"
EMBED_BACKEND = "localchat.engine.llama.embed_backend:LlamaEmbedBackend"


class GgufFormat:
    """GGUF files: one file, llama.cpp splits, or pieces joined on download."""

    name = "gguf"
    files_hint = "a .gguf file"

    def owns_quant(self, quant: str) -> bool:
        return quant_in_stem(quant) is not None  # Q4_K_M, IQ2_XS, BF16, or a file stem

    def catalog_repo(self, entry: CatalogEntry) -> tuple[str, str] | None:
        return (entry.gguf.repo, entry.gguf.revision) if entry.gguf is not None else None

    def catalog_files(self, entry: CatalogEntry, quant: str | None) -> Sequence[FileGroup]:
        source = entry.gguf
        if source is None:
            return ()
        if quant is not None:
            spec = source.quant(quant)
            specs = [spec] if spec is not None else []
        else:
            specs = sorted(source.quants.values(), key=lambda q: quality_rank(q.quant))
        groups = [(spec.quant, local_names(spec.files)) for spec in specs]
        return [FileGroup(quant, names, opens=names[0]) for quant, names in groups]

    def snapshot_models(self, snapshot: Path) -> Sequence[FileGroup]:
        found = []
        for stem, paths in snapshot_groups(snapshot).items():
            names = tuple(p.relative_to(snapshot).as_posix() for p in paths)
            found.append(FileGroup(quant_in_stem(stem.rsplit("/", 1)[-1]), names, names[0]))
        return found

    def local_model(self, path: Path) -> LocalModel | None:
        if path.is_dir() or not _has_magic(path):
            return None
        return LocalModel(
            name=path.name,
            format=self.name,
            path=path,
            files=(path,),
            quant=quant_in_filename(path.name),
            source="path",
        )

    def select(
        self, listing: Listing, quant: str | None, entry: CatalogEntry | None, choose: ChooseQuant
    ) -> Selection | None:
        group = _catalog_group(listing, quant, entry, choose)
        if group is None:
            groups = group_gguf_files(listing.files)
            if not groups:
                return None
            group = pick_group(groups, quant or choose(quant_sizes(groups)), listing.repo_id)
        return Selection(
            format=self.name,
            quant=group.quant,
            layout=group.layout,
            files=group.files,
            local_paths=group.local_paths,
            opens=group.local_paths[0],
        )

    def offered_quants(self, listing: Listing) -> dict[str, int]:
        return quant_sizes(group_gguf_files(listing.files))

    def check_files(self, paths: tuple[Path, ...]) -> None:
        with paths[0].open("rb") as handle:
            magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise CorruptModelFile(
                f"{paths[0].name} is not a GGUF file (it starts with {magic!r})",
                hint="the repo may not hold llama.cpp weights; remove it with `localchat rm`",
            )

    def describe(self, model: LocalModel) -> ModelFacts:
        for path in model.files:
            validate_gguf(path)
        metadata = read_gguf_metadata(model.path)
        trained = metadata.get(f"{metadata.get('general.architecture')}.context_length")
        return ModelFacts(metadata, trained if isinstance(trained, int) else None)

    def plan(self, model: LocalModel, hardware: Hardware, request: PlanRequest) -> Plan:
        return plan_for_file(model.path, hardware, request=request)

    def load_settings(self, plan: Plan, path: Path) -> LoadSettings:
        if plan.pooling is not None:  # an embedding model (engine.embedding)
            return llama_embed_settings(plan, path)
        return llama_settings(plan, path)


def _catalog_group(
    listing: Listing, quant: str | None, entry: CatalogEntry | None, choose: ChooseQuant
) -> QuantGroup | None:
    """The catalog's own file list for this quant, when the entry names this repo and
    every file is in the listing (else None: the listing's groups decide)."""
    if entry is None or entry.gguf is None or entry.gguf.repo.lower() != listing.repo_id.lower():
        return None
    by_path = {f.path: f for f in listing.files}
    if quant is None:
        available = {
            q.quant: q.size_bytes
            for q in entry.gguf.quants.values()
            if all(name in by_path for name in q.files)
        }
        if not available:
            return None
        quant = choose(available)
    spec = entry.gguf.quant(quant)
    if spec is None or not all(name in by_path for name in spec.files):
        return None
    return group_for_files([by_path[name] for name in spec.files], spec.quant)


def _has_magic(path: Path) -> bool:
    """Whether ``path`` is a GGUF file.  A ``.gguf`` without the magic is damaged
    (``CorruptModelFile``); anything else is simply not this format's."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelNotFound(f"cannot read {path} ({exc.strerror})") from exc
    if magic == GGUF_MAGIC:
        return True
    if path.suffix.lower() == ".gguf":  # meant as a model, but damaged
        raise CorruptModelFile(
            f"{path.name}: not a GGUF file (it does not start with GGUF)",
            hint="delete the file and download it again",
        )
    return False


def register(registry: Registry) -> None:
    registry.add_format(GgufFormat())
    registry.add_backend(LlamaSettings, BACKEND)
    registry.add_backend(LlamaEmbedSettings, EMBED_BACKEND)
