"""MODEL strings: catalog names, hub references, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.errors import ModelNotFound
from localchat.reference import parse_model_ref


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_catalog_name_with_quant(catalog) -> None:
    ref = parse_model_ref("huozi3:q4_0", catalog)
    assert ref.kind == "catalog" and ref.entry.name == "huozi3" and ref.quant == "q4_0"


@pytest.mark.parametrize(
    "text", ["bartowski/Foo-GGUF:Q4_K_M", "hf.co/bartowski/Foo-GGUF:Q4_K_M",
             "https://huggingface.co/bartowski/Foo-GGUF:Q4_K_M"],
)  # fmt: skip
def test_hub_forms(catalog, text: str) -> None:
    ref = parse_model_ref(text, catalog)
    assert (ref.kind, ref.repo_id, ref.quant) == ("hub", "bartowski/Foo-GGUF", "Q4_K_M")


def test_hub_repo_of_a_catalog_model_keeps_its_entry(catalog) -> None:
    ref = parse_model_ref("HIT-SCIR/huozi3-gguf", catalog)
    assert ref.kind == "hub" and ref.entry.name == "huozi3" and ref.quant is None


def test_paths(catalog, tmp_path: Path) -> None:
    assert parse_model_ref("./x.gguf", catalog).kind == "path"
    assert parse_model_ref(str(tmp_path / "m.gguf"), catalog).path == tmp_path / "m.gguf"


@pytest.mark.parametrize("text", ["", "no-such-model", "a/b/c/d"])
def test_unknown_is_model_not_found(catalog, text: str) -> None:
    with pytest.raises(ModelNotFound):
        parse_model_ref(text, catalog)
