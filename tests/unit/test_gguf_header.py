"""The streaming GGUF header parser, metadata, token lookup and validation."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from localchat.errors import CorruptModelFile
from localchat.gguf import (
    BytesSource,
    gguf_token_texts,
    parse_header,
    read_gguf,
    read_gguf_header,
    read_gguf_metadata,
    split_parts,
    validate_gguf,
)
from tests.fixtures.gguf_files import corrupt_truncated, tiny_spec, write_gguf, write_split_gguf


def test_metadata_has_scalars_small_arrays_and_token_texts(tiny_gguf: Path) -> None:
    meta = read_gguf_metadata(tiny_gguf)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == 4
    assert meta["llama.attention.head_count_kv"] == 2
    assert meta["tokenizer.bos_token"] == "<s>"
    assert meta["tokenizer.eos_token"] == "</s>"
    assert "tokenizer.ggml.tokens" not in meta  # vocab arrays are left out


def test_tensor_infos_and_data_offset(tiny_gguf: Path) -> None:
    header = read_gguf_header(tiny_gguf)
    spec = tiny_spec()
    assert [t.name for t in header.tensors] == [t.name for t in spec.tensors]
    assert header.tensor_data_bytes == spec.tensor_bytes
    assert header.data_offset_bytes % header.alignment == 0
    embd = header.tensors[0]
    assert embd.shape == (256, 1000)  # ne0 first
    assert embd.type_name == "Q8_0"
    assert embd.n_bytes == 256 * 1000 // 32 * 34


def test_token_text_by_id(mixtral_q4_0_gguf: Path) -> None:
    texts = gguf_token_texts(mixtral_q4_0_gguf, [57001, 57000, 2, 10**6])
    assert texts == {57001: "<|endofutterance|>", 57000: "<|beginofutterance|>", 2: "</s>"}


def test_real_gemma_header(gemma_path: Path) -> None:
    meta = read_gguf_metadata(gemma_path)  # its speed is measured in bench/, not asserted
    assert meta["general.architecture"] == "gemma3"
    assert meta["tokenizer.bos_token"] == "<bos>"
    assert meta["tokenizer.eos_token"] == "<eos>"


def test_corrupt_files_raise_one_line(corrupt_gguf: Path) -> None:
    with pytest.raises(CorruptModelFile) as info:
        validate_gguf(corrupt_gguf)
    assert "\n" not in info.value.one_line()
    assert corrupt_gguf.name in info.value.one_line()


def test_truncated_tensor_data_is_caught(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = corrupt_truncated(tmp_path / "cut.gguf", tiny_gguf, tiny_gguf.stat().st_size - 1)
    parse_header(BytesSource(cut.read_bytes(), "cut.gguf"))  # the header itself is intact
    with pytest.raises(CorruptModelFile, match="truncated"):
        validate_gguf(cut)
    with pytest.raises(CorruptModelFile, match="truncated"):  # show and plan read this
        read_gguf_header(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorruptModelFile, match="not found"):
        validate_gguf(tmp_path / "nope.gguf")


def test_caps_and_bad_version() -> None:
    huge_array = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<IIQ", 9, 4, 1 << 40)
    )
    with pytest.raises(CorruptModelFile, match="implausible array length"):
        parse_header(BytesSource(huge_array, "a.gguf"))
    big_endian = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    with pytest.raises(CorruptModelFile, match="unsupported GGUF version"):
        parse_header(BytesSource(big_endian, "b.gguf"))
    too_many_dims = (
        b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 9)
    )
    with pytest.raises(CorruptModelFile, match="dimensions"):
        parse_header(BytesSource(too_many_dims + b"\0" * 100, "c.gguf"))


def test_every_prefix_of_a_header_fails_cleanly(tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    end = read_gguf_header(tiny_gguf).data_offset_bytes
    for cut in range(0, end, max(end // 300, 1)):
        with pytest.raises(CorruptModelFile):
            parse_header(BytesSource(data[:cut], "cut.gguf"))


def test_split_files_validate_each_part(gguf_dir: Path, tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 3)
    assert [p.name for p in parts] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split_parts(parts[0]) == parts
    validate_gguf(parts[0])
    info = read_gguf(parts[0])
    assert info.weights_bytes == tiny_spec().tensor_bytes
    data = parts[2].read_bytes()
    parts[2].write_bytes(data[:-1])
    with pytest.raises(CorruptModelFile, match="00003"):
        validate_gguf(parts[0])
    parts[1].unlink()
    with pytest.raises(CorruptModelFile, match="missing"):
        validate_gguf(parts[0])


def test_sparse_70b_file_validates_without_reading_data(tmp_path: Path) -> None:
    from tests.fixtures.gguf_files import llama70b_spec

    path = write_gguf(tmp_path / "big.gguf", llama70b_spec("Q4_K_M", with_tokens=False))[0]
    assert path.stat().st_size > 40e9
    validate_gguf(path)
