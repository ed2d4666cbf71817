"""Hostile GGUF files: ``show``, ``plan`` and ``ask`` refuse each with one line (issue 9).

Item 4: files llama.cpp aborts on (SIGABRT) are refused before llama.cpp sees them.
Item 5: counts and lengths are bounded by the file size before anything is allocated.
Item 6: truncated and overlapping tensor data fail ``show`` and ``plan`` like ``ask``.
Item 7: what used to be "internal error" gets the corrupt-file exit code.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

from localchat.cli.main import main
from localchat.errors import CorruptModelFile, ExitCode
from localchat.gguf import read_gguf_header, validate_gguf
from tests.fixtures.gguf_files import tiny_spec, write_gguf
from tests.fixtures.memory import peak_rss_kib, reset_peak_rss

U8, U32, F32, STRING, ARRAY, U64 = 0, 4, 6, 8, 9, 10


def gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def raw_gguf(
    kvs: list[bytes], tensors: list[tuple[bytes, tuple[int, ...], int, int]], data_bytes: int = 0
) -> bytes:
    """A GGUF v3 file from encoded key/values and (name, shape, ggml type, offset) tensors."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    for name, shape, ggml_type, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<IQ", ggml_type, offset)
    out += b"\0" * (-len(out) % 32)
    return out + b"\0" * data_bytes


def kv(key: str, value_type: int, payload: bytes) -> bytes:
    return gguf_string(key.encode()) + struct.pack("<I", value_type) + payload


def tiny_file(tmp_path: Path, name: str, **metadata: Any) -> Path:
    """The tiny llama model with ``metadata`` changed (None deletes a key)."""
    spec = tiny_spec()
    tokens = metadata.pop("tokens", None)
    for key, value in metadata.items():
        key = key.replace("__", ".")
        if value is None:
            spec.metadata.pop(key, None)
        else:
            spec.metadata[key] = value
    if tokens is not None:
        spec.tokens = tokens
    return write_gguf(tmp_path / f"{name}.gguf", spec)[0]


def run_cli(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited, patch("sys.stdin", io.TextIOWrapper(io.BytesIO(b""))):
        main(argv)
    captured = capsysbinary.readouterr()
    return int(exited.value.code or 0), captured.out.decode(), captured.err.decode()


def assert_refused_by_all_three(path: Path, capsysbinary, match: str = "") -> str:
    """show, plan and ask: exit 6, one short line on stderr, nothing on stdout."""
    lines = []
    for argv in (["show", str(path)], ["plan", str(path), "--cpu-only"],
                 ["ask", "-m", str(path), "hi"]):  # fmt: skip
        code, out, err = run_cli(argv, capsysbinary)
        assert code == ExitCode.CORRUPT_MODEL_FILE, (argv[0], code, err[:500])
        assert out == "" and "Traceback" not in err
        assert err.startswith("localchat: error: ") and err.count("\n") == 1, err[:500]
        assert len(err) < 400 and match in err, err
        lines.append(err)
    assert len(set(lines)) == 1, lines  # one validation: the same message from each
    return lines[0]


# -------------------------------------------------------- item 4: llama.cpp aborts

ABORTS_LLAMA_CPP = {
    "rms eps NaN": {"llama.attention.layer_norm_rms_epsilon": float("nan")},
    "rms eps negative": {"llama.attention.layer_norm_rms_epsilon": -1e-5},
    "rms eps infinite": {"llama.attention.layer_norm_rms_epsilon": float("inf")},
    "alignment 1": {"general.alignment": 1},
    "alignment 8": {"general.alignment": 8},
    "alignment not a power of two": {"general.alignment": 48},
    "unsupported tokenizer": {"tokenizer.ggml.model": "sentencepiece-evil"},
    "too many experts": {"llama.expert_count": 2000, "llama.expert_used_count": 2},
    "more experts used than exist": {"llama.expert_count": 8, "llama.expert_used_count": 9},
    "experts used without experts": {"llama.expert_used_count": 2},
    "expert groups": {"llama.expert_count": 8, "llama.expert_used_count": 2,
                      "llama.expert_group_count": 3, "llama.expert_group_used_count": 1},
    "unknown rope scaling": {"llama.rope.scaling.type": "quadratic"},
    "too many layers": {"llama.block_count": 513},
    "nextn layers past the model": {"llama.nextn_predict_layers": 9},
    "duplicate token texts": {"tokens": ["<unk>", "<s>", "</s>", "a", "a"]},
    "empty tokens that collide": {"tokens": ["<unk>", "<s>", "</s>", "", "[EMPTY_3]"]},
    "invalid UTF-8 token": {"tokens": ["<unk>", "<s>", "</s>", b"\xff\xfe"]},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ABORTS_LLAMA_CPP))
def test_files_llama_cpp_aborts_on_are_refused(name: str, tmp_path: Path, capsysbinary) -> None:
    path = tiny_file(tmp_path, name.replace(" ", "_"), **ABORTS_LLAMA_CPP[name])
    assert_refused_by_all_three(path, capsysbinary, path.name)


def test_the_real_model_passes(gemma_path: Path) -> None:
    validate_gguf(gemma_path)
    assert read_gguf_header(gemma_path).metadata["tokenizer.ggml.model"] == "llama"


# ------------------------------------------------------------ item 5: memory bounds


def test_huge_counts_are_bounded_by_the_file_size(tmp_path: Path, capsysbinary) -> None:
    rss_before_kib = reset_peak_rss()
    many_kvs = b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 19) + b"\0" * 4096
    many_tensors = b"GGUF" + struct.pack("<IQQ", 3, 1 << 19, 0) + b"\0" * 4096
    long_array = raw_gguf([kv("a", ARRAY, struct.pack("<IQ", U32, 1 << 25))], [])
    long_strings = raw_gguf([kv("a", ARRAY, struct.pack("<IQ", STRING, 1 << 25))], [])
    for name, data in [("kvs", many_kvs), ("tensors", many_tensors),
                       ("array", long_array), ("strings", long_strings)]:  # fmt: skip
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(data)
        line = assert_refused_by_all_three(path, capsysbinary)
        assert "cannot fit" in line
    assert peak_rss_kib() - rss_before_kib < 1 << 20  # KiB: under 1 GiB more


def test_block_count_of_a_hundred_million(tmp_path: Path, capsysbinary) -> None:
    """Was 4 GB of RSS, then MemoryError, in plan."""
    rss_before_kib = reset_peak_rss()
    path = tiny_file(tmp_path, "blocks", llama__block_count=10**8)
    assert_refused_by_all_three(path, capsysbinary, "block_count")
    assert peak_rss_kib() - rss_before_kib < 1 << 20


def test_a_64_mib_tensor_name_gives_a_short_message(tmp_path: Path, capsysbinary) -> None:
    """Was 2.3 GB of RSS and a 268 MB error message."""
    name_bytes = 64 << 20
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", name_bytes)
    path = tmp_path / "long-name.gguf"
    with path.open("wb") as out:
        out.write(header)
        out.truncate(len(header) + name_bytes + 64)  # a sparse file full of NULs
    line = assert_refused_by_all_three(path, capsysbinary, "tensor name")
    assert len(line) < 200


def test_binary_names_are_quoted_short(tmp_path: Path) -> None:
    junk = bytes(range(256)) * 200
    data = raw_gguf([kv(junk[:1000].decode("latin-1"), 99, b"")], [])
    path = tmp_path / "junk-key.gguf"
    path.write_bytes(data)
    with pytest.raises(CorruptModelFile) as caught:
        validate_gguf(path)
    assert len(caught.value.one_line()) < 300


# ----------------------------------------------- item 6: one validation for all three


def test_truncated_tensor_data(tmp_path: Path, tiny_gguf: Path, capsysbinary) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf.read_bytes()[:-100])
    assert_refused_by_all_three(path, capsysbinary, "truncated")


def test_overlapping_tensor_data(tmp_path: Path, capsysbinary) -> None:
    kvs = [kv("general.architecture", STRING, gguf_string(b"llama"))]
    q8_0 = 8  # 32 values per 34-byte block
    tensors = [(b"a.weight", (64, 4), q8_0, 0), (b"b.weight", (64, 4), q8_0, 256)]
    path = tmp_path / "overlap.gguf"
    path.write_bytes(raw_gguf(kvs, tensors, data_bytes=1024))
    assert_refused_by_all_three(path, capsysbinary, "overlap")
    tensors[1] = (b"a.weight", (64, 4), q8_0, 512)
    path.write_bytes(raw_gguf(kvs, tensors, data_bytes=1024))
    assert_refused_by_all_three(path, capsysbinary, "twice")


# ------------------------------------------- item 7: documented codes, not "internal"


@pytest.mark.parametrize(
    "metadata",
    [
        {"llama.block_count": 0},
        {"llama.block_count": 2**31},
        {"llama.context_length": 2**32 - 1},
        {"llama.context_length": 0},
        {"llama.embedding_length": 0},
        {"llama.attention.head_count": [8, 8]},
    ],
    ids=["block_count 0", "block_count 2^31", "ctx 2^32-1", "ctx 0", "n_embd 0", "heads list"],
)
def test_impossible_hparams(metadata: dict, tmp_path: Path, capsysbinary) -> None:
    path = tiny_file(tmp_path, "hparams", **metadata)
    assert_refused_by_all_three(path, capsysbinary)


def test_arrays_nested_5000_deep(tmp_path: Path, capsysbinary) -> None:
    payload = struct.pack("<IQ", ARRAY, 1) * 5000 + struct.pack("<IQ", U8, 0)
    path = tmp_path / "nested.gguf"
    path.write_bytes(raw_gguf([kv("deep", ARRAY, payload)], []))
    assert_refused_by_all_three(path, capsysbinary, "nested")
