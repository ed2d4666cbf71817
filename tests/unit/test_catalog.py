"""models.toml parsing: the shipped catalog, and malformed catalogs naming the entry at fault."""

from __future__ import annotations

import pytest

from localchat.catalog import load_catalog, parse_catalog
from localchat.errors import ConfigError

GOOD_ENTRY = """
default_model = "tiny"
[models.tiny]
family = "llama"
description = "a tiny model"
chat_format = "gguf"
arch = { n_layers = 2, n_embd = 64, n_head = 4, n_head_kv = 4, head_dim = 16, n_ff = 128, n_vocab = 256, n_ctx_train = 512 }
[models.tiny.gguf]
repo = "someone/tiny-GGUF"
quants.Q4_K_M = { files = ["tiny-Q4_K_M.gguf"], size_bytes = 1000 }
"""


def test_shipped_catalog_has_the_seed_models() -> None:
    catalog = load_catalog()
    for name in ("huozi3", "reflection-70b", "nemotron-70b", "higgs-70b", "qwen2.5-0.5b",
                 "qwen2.5-1.5b", "llama-3.2-1b", "llama-3.2-3b", "gemma-3-1b", "smollm2-1.7b"):  # fmt: skip
        assert catalog.get(name) is not None, name
    huozi = catalog.get("huozi3")
    assert set(huozi.gguf.quants) == {"Q2_K", "Q4_0"}
    assert huozi.awq is not None and huozi.awq.repo == "HIT-SCIR/huozi3-awq"
    assert huozi.arch.n_expert == 8 and huozi.arch.n_expert_used == 2
    assert catalog.get("nemotron-70b").awq is not None
    reflection_q5 = catalog.get("reflection-70b").gguf.quant("q5_k_m")
    assert reflection_q5.is_split and not reflection_q5.is_concatenated_parts
    assert catalog.get("higgs-70b").gguf.quant("Q8_0").is_concatenated_parts
    assert catalog.default_model in catalog.entries


def test_a_good_entry_parses() -> None:
    catalog = parse_catalog(GOOD_ENTRY)
    entry = catalog.get("tiny")
    assert entry.gguf.quant("q4_k_m").files == ("tiny-Q4_K_M.gguf",)
    assert entry.arch.n_expert == 0
    assert catalog.find_by_repo("SOMEONE/tiny-gguf") is entry


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (GOOD_ENTRY.replace('family = "llama"\n', ""), "model 'tiny': missing field 'family'"),
        (GOOD_ENTRY.replace("n_layers = 2", "n_layers = -2"), "model 'tiny' [arch]: field 'n_layers'"),
        (GOOD_ENTRY.replace("n_layers = 2", "n_layrs = 2"), "model 'tiny': unknown arch field(s) n_layrs"),
        (GOOD_ENTRY.replace("size_bytes = 1000", "size_bytes = 'big'"), "quant 'Q4_K_M': field 'size_bytes'"),
        (GOOD_ENTRY.replace('files = ["tiny-Q4_K_M.gguf"]', "files = []"), "quant 'Q4_K_M': 'files'"),
        (GOOD_ENTRY.replace('repo = "someone/tiny-GGUF"', 'repo = "tiny"'), "repo 'tiny' must look like owner/name"),
        (GOOD_ENTRY.replace('default_model = "tiny"', 'default_model = "huge"'), "default_model 'huge'"),
        (GOOD_ENTRY + "\n[models.bad\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_malformed_catalog_names_the_entry(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(broken, source="models.toml")
    assert expected in caught.value.one_line()
    assert "\n" not in caught.value.one_line()
