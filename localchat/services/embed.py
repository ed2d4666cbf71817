"""Embeddings: texts (or token ids) in, one vector each out, for the server's two APIs,
``localchat embed`` and the Python API alike.

    vectors = embed_texts(["a cat", "a dog"], model="nomic-embed-text-v1.5")
    with open_model("nomic-embed-text-v1.5") as model:
        result = embed_inputs(model, ["a cat"], EmbedOptions(dimensions=256))

Only embedding models make embeddings (``engine.embedding`` says why generative models
do not).  Each input is tokenized with the model's special tokens (a token-id input is
used as given), cut to the model's longest input or refused (``truncate``), pooled by
the model, then cut to ``dimensions`` and scaled to unit length (``normalize``: what
OpenAI and Ollama return; after a cut, the rest is scaled again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from localchat.engine.embedding import (
    EMBEDDING_MODELS_HINT,
    Embedder,
    embedder_of,
    embedding_facts,
    listed_embedding,
    refuse_reranker,
)
from localchat.engine.registry import format_named
from localchat.errors import ConfigError, InvalidRequest
from localchat.services.model import LoadedModel
from localchat.services.open import open_model
from localchat.services.resolve import ModelRef, find_on_disk, resolve_model

EmbedInput = str | Sequence[int]  # a text, or its token ids


def input_name(index: int) -> str:
    return f"input[{index}]"


@dataclass(frozen=True)
class EmbedOptions:
    """How to embed; the defaults are OpenAI's and Ollama's."""

    dimensions: int | None = None  # keep the first N values (Matryoshka models)
    normalize: bool = True  # unit L2 length (again after a dimensions cut)
    truncate: bool = True  # cut an input over the model's longest; False: refuse it
    name_of: Callable[[int], str] = field(default=input_name)  # an input in messages


@dataclass(frozen=True)
class Embeddings:
    """The vectors, in input order, and what they cost."""

    vectors: list[list[float]]
    prompt_tokens: int  # every input's tokens, after truncation
    dimensions: int  # the model's own vector size
    truncated: tuple[int, ...] = ()  # the inputs that were cut


def embed_texts(
    texts: str | Sequence[str],
    model: str | ModelRef | None = None,
    *,
    dimensions: int | None = None,
    normalize: bool = True,
    truncate: bool = True,
    **open_options: Any,
) -> list[list[float]]:
    """One vector per text with MODEL (loaded in this process for the call).  Keyword
    options beyond the three are ``open_model``'s (``n_ctx``, ``allow_download``, ...)."""
    if open_options.get("engine"):
        raise ConfigError("embeddings run in this process; an --engine server is not used")
    inputs = [texts] if isinstance(texts, str) else list(texts)
    ref, _ = resolve_model(model)
    check_embeds(ref)
    options = EmbedOptions(dimensions=dimensions, normalize=normalize, truncate=truncate)
    with open_model(ref, **{**open_options, "local": True}) as loaded:
        return embed_inputs(loaded, inputs, options).vectors


def check_embeds(ref: ModelRef) -> None:
    """Refuse, before anything loads or downloads, a model known not to make embeddings:
    its files on disk say so, or (not on disk) its catalog entry has no ``[embedding]``.
    A hub model not on disk, or the server's default model, is known once loaded."""
    if not ref.text:
        return
    local = find_on_disk(ref)
    if local is not None:
        facts = embedding_facts(format_named(local.format).describe(local).metadata)
    elif ref.entry is not None:
        facts = listed_embedding(ref.entry)
    else:
        return
    if facts is None:
        raise InvalidRequest(
            f"{ref.display_name} is not an embedding model: it has no pooling, so it makes "
            "no embeddings",
            hint=EMBEDDING_MODELS_HINT,
        )
    refuse_reranker(ref.display_name, facts.pooling)


def embed_inputs(
    model: LoadedModel, inputs: Sequence[EmbedInput], options: EmbedOptions | None = None
) -> Embeddings:
    """One vector per input with an opened model; ``InvalidRequest`` naming the first
    input that cannot be embedded (empty, ids outside the vocabulary, too long)."""
    options = options or EmbedOptions()
    embedder = embedder_of(model.backend, model.name)
    refuse_reranker(model.name, embedder.pooling)
    _check_dimensions(model.name, options.dimensions, embedder.dimensions)
    token_lists: list[list[int]] = []
    truncated: list[int] = []
    for index, item in enumerate(inputs):
        tokens = _tokens(embedder, item, options.name_of(index))
        if len(tokens) > embedder.max_tokens:
            _check_truncation(model.name, options, index, len(tokens), embedder.max_tokens)
            tokens = _cut(embedder, item, tokens)
            truncated.append(index)
        token_lists.append(tokens)
    vectors = [_finish(vector, options) for vector in embedder.embed(token_lists)]
    prompt_tokens = sum(len(tokens) for tokens in token_lists)
    return Embeddings(vectors, prompt_tokens, embedder.dimensions, tuple(truncated))


def _tokens(embedder: Embedder, item: EmbedInput, name: str) -> list[int]:
    if isinstance(item, str):
        if not item:
            raise InvalidRequest(f"{name} is an empty string")
        tokens = embedder.tokenize(item)
        if not tokens:
            raise InvalidRequest(f"{name} turns into no tokens at all")
        return tokens
    tokens = list(item)
    if not tokens:
        raise InvalidRequest(f"{name} is an empty list of token ids")
    for token in tokens:
        if not 0 <= token < embedder.n_vocab:
            raise InvalidRequest(
                f"{name} has token id {token}, outside the model's vocabulary "
                f"(0 to {embedder.n_vocab - 1})"
            )
    return tokens


def _check_truncation(
    model_name: str, options: EmbedOptions, index: int, n_tokens: int, max_tokens: int
) -> None:
    """An input over the model's longest is cut only when ``truncate`` allows it."""
    if not options.truncate:
        raise InvalidRequest(
            f"{options.name_of(index)} is {n_tokens} tokens; {model_name} reads at most "
            f"{max_tokens} per input",
            hint="shorten it, or load the model with a larger context (num_ctx, --ctx) "
            "up to the one it was trained for",
        )


def _cut(embedder: Embedder, item: EmbedInput, tokens: list[int]) -> list[int]:
    """A text keeps the end token its tokenizer appended; token ids are cut as given."""
    return embedder.truncate(tokens) if isinstance(item, str) else tokens[: embedder.max_tokens]


def _check_dimensions(model_name: str, dimensions: int | None, size: int) -> None:
    if dimensions is None or 1 <= dimensions <= size:
        return
    what = "less than 1" if dimensions < 1 else f"more than {model_name}'s {size}"
    raise InvalidRequest(f"dimensions {dimensions} is {what}", hint=f"ask for 1 to {size}")


def _finish(vector: list[float], options: EmbedOptions) -> list[float]:
    if options.dimensions is not None:
        vector = vector[: options.dimensions]
    return normalized(vector) if options.normalize else vector


def normalized(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to unit L2 length (an all-zero vector stays zero)."""
    norm = math.sqrt(math.fsum(value * value for value in vector))
    if norm == 0.0:
        return list(vector)
    return [value / norm for value in vector]
