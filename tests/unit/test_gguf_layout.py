"""The tensor layout check (``gguf.layout``) and the generic tensor checks, file by file.

``tests/integration/test_gguf_layout_sweep.py`` holds the same rules against llama.cpp
itself; these are the cases around it: what must still pass (the fixtures' real-shaped
models, metadata-only files, unknown architectures, split models) and the generic
refusals (duplicate keys, gaps between tensors, missing keys).
"""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest

from localchat.errors import CorruptModelFile
from localchat.gguf import read_gguf, read_gguf_header, read_gguf_metadata, validate_gguf
from localchat.gguf.hparams import read_hparams
from tests.fixtures.gguf_files import (
    ModelSpec,
    TensorSpec,
    llama70b_spec,
    mixtral_spec,
    tiny_spec,
    write_gguf,
    write_split_gguf,
)
from tests.unit.test_gguf_hostile import STRING, U32, gguf_string, kv, raw_gguf


def refusal(path: Path) -> str:
    with pytest.raises(CorruptModelFile) as refused:
        read_gguf_header(path)
    return refused.value.message


@pytest.mark.parametrize(
    "spec",
    [tiny_spec(), tiny_spec(tied_output=True), mixtral_spec("Q4_0", with_tokens=False),
     llama70b_spec("Q4_K_M", with_tokens=False)],
    ids=["tiny", "tied", "mixtral", "llama-70b"],
)  # fmt: skip
def test_real_shaped_models_pass(spec: ModelSpec, tmp_path: Path) -> None:
    read_gguf(write_gguf(tmp_path / "m.gguf", spec)[0])


def test_a_file_that_describes_no_model_is_left_alone(tmp_path: Path) -> None:
    """No block_count: a metadata-only file (chat-template tests write these)."""
    data = raw_gguf([kv("general.architecture", STRING, gguf_string(b"llama"))], [])
    path = tmp_path / "meta.gguf"
    path.write_bytes(data)
    assert read_gguf_metadata(path)["general.architecture"] == "llama"


def test_an_unknown_architecture_gets_the_generic_checks_only(tmp_path: Path) -> None:
    spec = tiny_spec()
    spec.arch = "mamba-next"
    spec.metadata = {k.replace("llama.", "mamba-next."): v for k, v in spec.metadata.items()}
    spec.tensors.append(TensorSpec("anything.weight", (32,), spec.tensors[1].ggml_type))
    read_gguf_header(write_gguf(tmp_path / "unknown.gguf", spec)[0])


def test_a_split_model_is_checked_over_all_its_parts(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 3)
    validate_gguf(parts[0])
    assert read_gguf(parts).n_layers == 4
    spec = tiny_spec()
    spec.tensors = [t for t in spec.tensors if t.name != "blk.3.ffn_up.weight"]  # in part 3
    (tmp_path / "broken").mkdir()
    broken = write_split_gguf(tmp_path / "broken" / "tiny.gguf", spec, 3)
    assert "'blk.3.ffn_up.weight' is missing" in refusal(broken[0])  # show reads part 1 only
    with pytest.raises(CorruptModelFile, match=r"'blk\.3\.ffn_up\.weight' is missing"):
        read_gguf(broken)


def test_a_tensor_in_two_split_parts(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 3)
    parts[2].write_bytes(parts[1].read_bytes())  # part 3 is a second part 2
    assert "is in two split parts" in refusal(parts[0])


def test_a_split_model_with_a_part_missing(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 3)
    parts[1].unlink()
    assert "split part missing" in refusal(parts[0])


def test_a_key_given_twice(tmp_path: Path) -> None:
    arch = kv("general.architecture", STRING, gguf_string(b"llama"))
    path = tmp_path / "twice.gguf"
    path.write_bytes(raw_gguf([arch, kv("llama.block_count", U32, struct.pack("<I", 4)), arch], []))
    assert "'general.architecture' appears twice" in refusal(path)
    path.write_bytes(raw_gguf([kv("", U32, struct.pack("<I", 4))], []))
    assert "a key is empty" in refusal(path)


def test_tensors_must_lie_back_to_back(tmp_path: Path) -> None:
    """gguf.cpp wants each tensor's data right after the previous one's (aligned)."""
    kvs = [kv("general.architecture", STRING, gguf_string(b"x"))]
    f32 = 0
    path = tmp_path / "gap.gguf"
    path.write_bytes(raw_gguf(kvs, [(b"a", (8,), f32, 0), (b"b", (8,), f32, 64)], 128))
    assert "where 'a' before it ends at 32" in refusal(path)
    path.write_bytes(raw_gguf(kvs, [(b"a", (8,), f32, 32), (b"b", (8,), f32, 64)], 128))
    assert "'a' data at offset 32, expected at 0" in refusal(path)


def test_keys_llama_cpp_requires(tmp_path: Path) -> None:
    for key in ("llama.context_length", "llama.embedding_length",
                "llama.attention.layer_norm_rms_epsilon"):  # fmt: skip
        spec = tiny_spec()
        del spec.metadata[key]
        path = write_gguf(tmp_path / f"{key}.gguf", spec)[0]
        assert f"{key} is missing" in refusal(path)


def test_per_layer_arrays_of_the_wrong_length(tmp_path: Path) -> None:
    spec = tiny_spec()
    spec.metadata["llama.feed_forward_length"] = [512, 512]
    path = write_gguf(tmp_path / "ff.gguf", spec)[0]
    assert "feed_forward_length has 2 entries for 4 layers" in refusal(path)


def test_gemma3_sliding_layers_take_their_own_head_size(gemma_path: Path) -> None:
    """Layer 0 of gemma3 is a sliding-window layer: llama.cpp sizes every layer's q/k/v
    with key_length_swa when it is given."""
    cached = read_gguf_header(gemma_path)
    header = replace(cached, metadata=dict(cached.metadata))  # the cached one stays as is
    assert header.metadata["gemma3.attention.sliding_window"] == 512
    assert read_hparams(header, "gemma3").n_embd_head_k == 256
    header.metadata["gemma3.attention.key_length_swa"] = 128
    assert read_hparams(header, "gemma3").n_embd_head_k == 128
    header.metadata["gemma3.attention.sliding_window"] = 0  # no window: no sliding layers
    assert read_hparams(header, "gemma3").n_embd_head_k == 256
