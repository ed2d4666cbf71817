"""Dataclasses for catalog entries (one per ``[models.<name>]`` table)."""

from __future__ import annotations

from dataclasses import dataclass, field

# ``chat_format`` in models.toml that means: the chat template embedded in the model file.
MODEL_FILE_TEMPLATE = "gguf"
# The quant name ``MODEL:AWQ`` that asks for an entry's ``[awq]`` checkpoint.
AWQ_QUANT = "AWQ"
# An ``[embedding]`` table's poolings: one vector per input (as ``gguf.pooling`` reads them;
# the catalog stays free of the GGUF reader's imports).
EMBEDDING_POOLINGS = frozenset({"mean", "cls", "last"})


@dataclass(frozen=True)
class ArchNumbers:
    """Architecture figures the planner needs when no GGUF header is at hand."""

    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_swa: int = 0


@dataclass(frozen=True)
class QuantFiles:
    """One quantization of a GGUF repo: the file(s) that make it up."""

    quant: str
    files: tuple[str, ...]
    size_bytes: int

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1

    @property
    def is_concatenated_parts(self) -> bool:
        """``.gguf.partXofY`` pieces that must be joined into one file."""
        return any(".part" in name.rsplit(".gguf", 1)[-1] for name in self.files)


@dataclass(frozen=True)
class GgufSource:
    repo: str
    revision: str
    quants: dict[str, QuantFiles]

    def quant(self, name: str) -> QuantFiles | None:
        wanted = name.upper()
        return next((q for key, q in self.quants.items() if key.upper() == wanted), None)


@dataclass(frozen=True)
class AwqSource:
    repo: str
    revision: str
    size_bytes: int


@dataclass(frozen=True)
class PipSource:
    """A model that arrives as a pip package exposing ``assemble() -> path``."""

    package: str
    module: str
    quant: str
    size_bytes: int


@dataclass(frozen=True)
class EmbeddingSpec:
    """An embedding model's ``[embedding]`` table: what it pools and the vectors' size."""

    pooling: str  # "mean", "cls" or "last" (the GGUF's own key decides once on disk)
    dimensions: int


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    description: str
    chat_format: str
    arch: ArchNumbers
    sampling: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    gguf: GgufSource | None = None
    awq: AwqSource | None = None
    pip: PipSource | None = None
    embedding: EmbeddingSpec | None = None  # None: a generative model

    @property
    def uses_file_template(self) -> bool:
        """The chat format comes from the model file's own template (``chat_format = "gguf"``)."""
        return self.chat_format == MODEL_FILE_TEMPLATE

    def quant_names(self) -> tuple[str, ...]:
        """Every quant this entry names: its GGUF quants, ``AWQ``, the pip package's."""
        names = list(self.gguf.quants) if self.gguf is not None else []
        names += [AWQ_QUANT] if self.awq is not None else []
        names += [self.pip.quant] if self.pip is not None and self.pip.quant not in names else []
        return tuple(names)

    @property
    def formats(self) -> list[str]:
        return [
            label
            for label, source in (("gguf", self.gguf), ("awq", self.awq), ("pip", self.pip))
            if source is not None
        ]


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]
    default_model: str
    offline_fallback: str | None = None

    def get(self, name: str) -> CatalogEntry | None:
        return self.entries.get(name) or self.entries.get(name.lower())

    def find_by_repo(self, repo_id: str) -> CatalogEntry | None:
        wanted = repo_id.lower()
        for entry in self.entries.values():
            for source in (entry.gguf, entry.awq):
                if source is not None and source.repo.lower() == wanted:
                    return entry
        return None

    def names(self) -> list[str]:
        return list(self.entries)
