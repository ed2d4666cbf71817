"""Show a model: its format, metadata, chat format and capabilities (``show``, ``/api/show``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localchat.catalog import CatalogEntry
from localchat.engine.embedding import EmbeddingFacts, embedding_facts, listed_embedding
from localchat.engine.registry import ModelFacts, format_named
from localchat.formats import ChatFormat, resolve_format
from localchat.protocol import parse_messages
from localchat.services.resolve import ModelRef, catalog, find_on_disk, resolve_model
from localchat.services.structured import has_native_tools
from localchat.store import LocalModel
from localchat.types import Message


@dataclass(frozen=True)
class ModelInfo:
    """What ``show`` says about MODEL, from its files when they are on disk."""

    label: str  # MODEL as resolved, e.g. "huozi3:Q4_0"
    ref: ModelRef
    local: LocalModel | None  # None: not on disk
    metadata: Mapping[str, Any]  # GGUF-style keys, from the files ({} when not on disk)
    chat_format: ChatFormat
    n_ctx_train: int | None = None
    note: str = ""  # when not on disk: what may change once it is
    embedding: EmbeddingFacts | None = None  # an embedding model's pooling and size

    @property
    def format(self) -> str | None:
        """The model format's name ("gguf", "awq"), or None when it is not on disk."""
        return self.local.format if self.local is not None else None

    @property
    def file(self) -> Path | None:
        return self.local.path if self.local is not None else None

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Ollama's words: "completion"; "tools" when the chat template has a tool-call
        syntax of its own (every model can call through the generic JSON fallback, but
        clients read "tools" as "trained for it"); "thinking" when replies carry tagged
        parts; "embedding" alone for an embedding model."""
        if self.embedding is not None:
            return ("embedding",)
        tools = ("tools",) if has_native_tools(self.chat_format) else ()
        thinking = ("thinking",) if self.chat_format.parser_factory is not None else ()
        return ("completion", *tools, *thinking)


def show_model(model: str | ModelRef | None = None) -> ModelInfo:
    """MODEL's chat format and facts; from its files when on disk (checked as a load checks
    them), else from the catalog with a note that the files' own template may differ."""
    ref, _ = resolve_model(model)
    local = find_on_disk(ref)
    if local is None:
        fmt = resolve_format(ref.entry, {})
        note, listed = _not_on_disk_note(ref.entry), listed_embedding(ref.entry)
        return ModelInfo(ref.display_name, ref, None, {}, fmt, note=note, embedding=listed)
    facts, chat_format = describe(ref, local)
    embedding = embedding_facts(facts.metadata)
    return ModelInfo(
        ref.display_name,
        ref,
        local,
        facts.metadata,
        chat_format,
        facts.n_ctx_train,
        embedding=embedding,
    )


def describe(ref: ModelRef, local: LocalModel) -> tuple[ModelFacts, ChatFormat]:
    """What the files say (checked as a load checks them) and the chat format that follows:
    models.toml's, else the files' own template, else the family's (``formats.resolve``)."""
    facts = format_named(local.format).describe(local)
    entry = ref.entry or catalog().get(local.name)
    return facts, resolve_format(entry, facts.metadata)


def _not_on_disk_note(entry: CatalogEntry | None) -> str:
    if entry is None:
        return (
            "not on disk: showing the plain fallback; "
            "the GGUF's own chat template will be used once downloaded"
        )
    if entry.uses_file_template:
        return (
            "not on disk: showing the family default; "
            "the GGUF's own chat template will be used once downloaded"
        )
    return "not on disk"


def messages_from_json(data: Any) -> list[Message]:
    """OpenAI-style ``[{"role": ..., "content": ...}]`` (or ``{"messages": [...]}``) as
    messages; ``ConfigError`` naming what is wrong."""
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    return parse_messages(data)
