"""Embeddings without llama.cpp running: the packing of inputs into decodes, the unit
length, the catalog's ``[embedding]`` table, the planner's plan for an embedding model,
the settings and backend it gets, and the OpenAI request's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localchat.catalog import load_catalog, parse_catalog
from localchat.engine import settings_for_plan
from localchat.engine.embedding import (
    EmbeddingFacts,
    LlamaEmbedSettings,
    embedder_of,
    embedding_facts,
)
from localchat.engine.registry import registry
from localchat.engine.settings import LlamaSettings
from localchat.errors import ConfigError, InvalidRequest
from localchat.gguf import read_gguf_metadata
from localchat.gguf.pooling import pooling_of
from localchat.planner import PlanRequest, plan_for_file, plan_reference, what_if_hardware
from localchat.protocol import parse_request
from localchat.protocol.openai import MAX_EMBEDDING_INPUTS, EmbeddingRequest
from localchat.reference import parse_model_ref
from localchat.services import normalized
from tests.fixtures.embed_gguf import BertSpec, write_bert_gguf
from tests.fixtures.embed_gguf import embed_ggufs as embed_ggufs  # the fixture, re-exported

GiB = 1 << 30
CPU_16G = what_if_hardware(ram=16 * GiB, cpu_only=True)


# -- packing inputs into llama_decode calls -----------------------------------------


def _pack(lengths: list[int], max_tokens: int, max_sequences: int) -> list[list[int]]:
    # pure Python, but it lives beside the llama.cpp context: only its module loads it
    from localchat.engine.llama.embed import pack

    inputs = [[7] * n for n in lengths]
    return [[len(item) for item in group] for group in pack(inputs, max_tokens, max_sequences)]


def test_pack_keeps_order_and_fills_each_decode() -> None:
    assert _pack([3, 4, 5, 6], 10, 64) == [[3, 4], [5], [6]]
    assert _pack([10, 1, 9], 10, 64) == [[10], [1, 9]]
    assert _pack([1] * 5, 100, 2) == [[1, 1], [1, 1], [1]]
    assert _pack([], 10, 4) == []


def test_pack_never_exceeds_either_bound() -> None:
    lengths = [(n * 37) % 50 + 1 for n in range(300)]
    groups = _pack(lengths, 64, 16)
    assert [n for group in groups for n in group] == lengths
    assert all(sum(group) <= 64 and len(group) <= 16 for group in groups)


def test_normalized_is_unit_length_and_keeps_direction() -> None:
    vector = normalized([3.0, 4.0])
    assert vector == pytest.approx([0.6, 0.8])
    assert normalized([0.0, 0.0]) == [0.0, 0.0]


# -- what the GGUF and the catalog say ---------------------------------------------


def test_pooling_is_read_from_the_gguf(embed_ggufs: dict[str, Path], tmp_path: Path) -> None:
    assert pooling_of(read_gguf_metadata(embed_ggufs["bert-mean"])) == "mean"
    assert pooling_of(read_gguf_metadata(embed_ggufs["bert-cls"])) == "cls"
    assert pooling_of(read_gguf_metadata(embed_ggufs["bert-rank"])) == "rank"
    none = write_bert_gguf(tmp_path / "none-F32.gguf", BertSpec(pooling="none"))
    assert pooling_of(read_gguf_metadata(none)) is None  # per-token vectors: no embedding model
    absent = write_bert_gguf(tmp_path / "absent-F32.gguf", BertSpec(pooling=None))
    assert pooling_of(read_gguf_metadata(absent)) is None
    facts = embedding_facts(read_gguf_metadata(embed_ggufs["nomic-mean"]))
    assert facts == EmbeddingFacts("mean", 64)


def test_the_catalog_lists_embedding_models() -> None:
    catalog = load_catalog()
    expected = {"nomic-embed-text-v1.5": ("mean", 768), "bge-m3": ("cls", 1024)}
    expected["qwen3-embedding-0.6b"] = ("last", 1024)
    for name, (pooling, size) in expected.items():
        entry = catalog.get(name)
        assert entry is not None and entry.embedding is not None, name
        assert (entry.embedding.pooling, entry.embedding.dimensions) == (pooling, size)
        assert entry.gguf is not None and entry.gguf.quants
    assert catalog.get("qwen2.5-0.5b").embedding is None


GOOD = """
default_model = "e"
[models.e]
family = "bert"
description = "an embedding model"
chat_format = "completion"
arch = { n_layers = 2, n_embd = 64, n_head = 4, n_head_kv = 4, head_dim = 16, n_ff = 128, n_vocab = 256, n_ctx_train = 512 }
embedding = { pooling = "cls", dimensions = 64 }
[models.e.gguf]
repo = "someone/e-GGUF"
quants.Q8_0 = { files = ["e-Q8_0.gguf"], size_bytes = 1000 }
"""


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (GOOD.replace('pooling = "cls"', 'pooling = "rank"'), "pooling 'rank' is not one of cls, last, mean"),
        (GOOD.replace("dimensions = 64", "dimensions = 0"), "[embedding]: field 'dimensions'"),
        (GOOD.replace("dimensions = 64", "dims = 64"), "[embedding]: unknown field(s) dims"),
        (GOOD.replace('embedding = { pooling = "cls", dimensions = 64 }', 'embedding = "yes"'), "[embedding]: must be a table"),
    ],
)  # fmt: skip
def test_a_bad_embedding_table_names_the_entry(broken: str, expected: str) -> None:
    assert parse_catalog(GOOD).get("e").embedding is not None
    with pytest.raises(ConfigError) as caught:
        parse_catalog(broken, source="models.toml")
    assert "model 'e'" in caught.value.one_line() and expected in caught.value.one_line()


# -- the plan, the settings, the backend -------------------------------------------


def test_an_embedding_model_is_planned_as_one(embed_ggufs: dict[str, Path]) -> None:
    path = embed_ggufs["bert-mean"]
    plan = plan_for_file(path, CPU_16G)
    assert plan.pooling == "mean"
    assert (plan.n_ctx, plan.n_batch, plan.n_ubatch, plan.n_parallel) == (128, 128, 128, 1)
    assert plan.fits and plan.to_json()["pooling"] == "mean"
    assert plan.flash_attn  # on the CPU too: a batch of whole inputs is all prompt
    off = plan_for_file(path, CPU_16G, request=PlanRequest(flash_attn=False))
    assert not off.flash_attn
    assert any(
        r.startswith("embedding model (mean pooling): inputs of up to 128") for r in plan.reasons
    )
    asked = plan_for_file(path, CPU_16G, n_ctx=4096)  # past the trained context: capped
    assert asked.n_ctx == 128 and "capped at the 128 tokens" in asked.reasons[-1]
    # serve's --parallel auto (its default) gives generation models slots; an embedding
    # model keeps one sequence of the whole context (8 slots of 128/8 tokens aborted ggml)
    served = plan_for_file(path, CPU_16G, request=PlanRequest(parallel_auto=True))
    assert (served.n_ctx, served.n_parallel) == (128, 1)


def test_a_generative_model_keeps_its_plan(tiny_gguf: Path) -> None:
    plan = plan_for_file(tiny_gguf, CPU_16G)
    assert plan.pooling is None and plan.to_json()["pooling"] is None
    assert type(settings_for_plan(plan, tiny_gguf)) is LlamaSettings


def test_catalog_figures_plan_an_embedding_model_offline() -> None:
    ref = parse_model_ref("bge-m3", load_catalog())
    plan = plan_reference(ref, CPU_16G, offline=True)
    assert plan.pooling == "cls"
    assert plan.n_ctx == 2048 == plan.n_batch == plan.n_ubatch  # the default, not 8192
    longer = plan_reference(ref, CPU_16G, PlanRequest(n_ctx=8192), offline=True)
    assert longer.n_ctx == 8192 == longer.n_ubatch


def test_an_embedding_plan_loads_with_the_embedding_backend(embed_ggufs: dict[str, Path]) -> None:
    path = embed_ggufs["bert-cls"]
    settings = settings_for_plan(plan_for_file(path, CPU_16G), path)
    assert isinstance(settings, LlamaEmbedSettings) and settings.pooling == "cls"
    assert settings.describe()["pooling"] == "cls"
    factory = registry().backend_factory(settings)
    assert factory.__name__ == "LlamaEmbedBackend"


def test_a_backend_without_an_embedder_says_it_is_no_embedding_model() -> None:
    with pytest.raises(InvalidRequest) as caught:
        embedder_of(object(), "qwen2.5-0.5b")
    assert "qwen2.5-0.5b is not an embedding model" in caught.value.one_line()


# -- the OpenAI request ------------------------------------------------------------


def _parse(body: dict) -> EmbeddingRequest:
    return parse_request(json.dumps({"model": "m", **body}).encode(), EmbeddingRequest)


def test_openai_request_shapes() -> None:
    assert _parse({"input": "hi"}).input == "hi"
    assert _parse({"input": [1, 2, 3]}).input == [1, 2, 3]  # one input as token ids
    assert _parse({"input": list(range(5000))}).input[-1] == 4999  # long, still one input
    assert _parse({"input": [[1], [2, 3]]}).input == [[1], [2, 3]]
    assert _parse({"input": ["a"] * MAX_EMBEDDING_INPUTS, "encoding_format": "base64"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"input": ""}, "input: an empty string"),
        ({"input": ["a", "", "b"]}, "input: item 1 is empty"),
        ({"input": [[1, 2], []]}, "input: item 1 is empty"),
        ({"input": []}, "input: 1 to 2048 inputs"),
        ({"input": ["a"] * (MAX_EMBEDDING_INPUTS + 1)}, "input: 1 to 2048 inputs"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "a", "pooling": "mean"}, "pooling: unknown field"),
    ],
)
def test_openai_request_refusals_name_the_field(body: dict, expected: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse(body)
    assert expected in caught.value.one_line()
