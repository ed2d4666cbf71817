"""The same verdict on a bad GGUF from ``show``, ``plan`` and ``ask`` (issue 21).

The hostile-input campaign found files that ``ask`` refused (llama.cpp would not load
them, or would abort or loop on them) while ``show`` and ``plan`` said exit 0.  Each is
rebuilt here from the real Gemma 3 270M header (its tensor data left as a sparse hole:
nothing here reaches llama.cpp) and must now be refused by all three commands with
exit 6 and one line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from localchat.gguf import read_gguf_header
from localchat.gguf.header import GgufHeader, TensorInfo
from tests.integration.cli import assert_one_clean_error_line, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]

STRING, UINT32 = 8, 4


@dataclass
class RawHeader:
    """A GGUF header as bytes: the key/value part (magic and counts first), then the
    tensor table; the tensor data follows the header, aligned."""

    prefix: bytearray
    table: bytearray
    parsed: GgufHeader
    data_bytes: int

    @classmethod
    def read(cls, path: Path) -> RawHeader:
        parsed = read_gguf_header(path)
        with path.open("rb") as handle:
            head = handle.read(parsed.data_offset_bytes)
        table_start = head.rfind(_tensor_info(parsed.tensors[0]))
        table_end = table_start + sum(len(_tensor_info(t)) for t in parsed.tensors)
        return cls(
            prefix=bytearray(head[:table_start]),
            table=bytearray(head[table_start:table_end]),
            parsed=parsed,
            data_bytes=path.stat().st_size - parsed.data_offset_bytes,
        )

    def tensor_at(self, name: str) -> int:
        """Where the tensor's entry starts in ``table``."""
        return self.table.index(
            _tensor_info(next(t for t in self.parsed.tensors if t.name == name))
        )

    def write(self, path: Path) -> Path:
        header = bytes(self.prefix + self.table)
        header += b"\0" * (-len(header) % self.parsed.alignment)
        with path.open("wb") as out:
            out.write(header)
            out.truncate(len(header) + self.data_bytes)  # a sparse hole for the data
        return path


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _tensor_info(tensor: TensorInfo) -> bytes:
    dims = b"".join(struct.pack("<Q", d) for d in tensor.shape)
    return (_string(tensor.name) + struct.pack("<I", len(tensor.shape)) + dims
            + struct.pack("<IQ", tensor.ggml_type, tensor.offset))  # fmt: skip


def _n_tensors(count: int) -> Callable[[RawHeader], None]:
    def mutate(raw: RawHeader) -> None:
        raw.prefix[8:16] = struct.pack("<Q", count)

    return mutate


def _token_embd(
    change: Callable[[int, int, int], tuple[int, int, int]],
) -> Callable[[RawHeader], None]:
    """Rewrite token_embd's (ne0, ne1, type) in place."""

    def mutate(raw: RawHeader) -> None:
        at = raw.tensor_at("token_embd.weight") + len(_string("token_embd.weight")) + 4
        ne0, ne1, ggml_type = struct.unpack_from("<QQI", raw.table, at)
        struct.pack_into("<QQI", raw.table, at, *change(ne0, ne1, ggml_type))

    return mutate


def _empty_name(raw: RawHeader) -> None:
    at = raw.tensor_at("blk.0.attn_norm.weight")
    name = _string("blk.0.attn_norm.weight")
    raw.table[at : at + len(name)] = _string("")


def _renamed(old: str, new: str) -> Callable[[RawHeader], None]:
    def mutate(raw: RawHeader) -> None:
        at = raw.tensor_at(old)
        raw.table[at : at + len(_string(old))] = _string(new)

    return mutate


def _key_again(key: str, value_type: int, payload: bytes) -> Callable[[RawHeader], None]:
    """Append a second key/value with an existing key."""

    def mutate(raw: RawHeader) -> None:
        (n_kv,) = struct.unpack_from("<Q", raw.prefix, 16)
        raw.prefix[16:24] = struct.pack("<Q", n_kv + 1)
        raw.prefix += _string(key) + struct.pack("<I", value_type) + payload

    return mutate


def _tokenizer(model: str) -> Callable[[RawHeader], None]:
    def mutate(raw: RawHeader) -> None:
        old = _string("tokenizer.ggml.model") + struct.pack("<I", STRING) + _string("llama")
        new = _string("tokenizer.ggml.model") + struct.pack("<I", STRING) + _string(model)
        assert raw.prefix.count(old) == 1
        raw.prefix[:] = raw.prefix.replace(old, new)

    return mutate


# case -> (mutation, a word the one line must hold)
CASES: dict[str, tuple[Callable[[RawHeader], None], str]] = {
    "n_tensors 0": (_n_tensors(0), "missing"),
    "n_tensors 1": (_n_tensors(1), "missing"),
    "n_tensors 235": (_n_tensors(235), "missing"),
    "token_embd dims swapped": (_token_embd(lambda ne0, ne1, t: (ne1, ne0, t)), "shape"),
    "token_embd type 39": (_token_embd(lambda ne0, ne1, t: (ne0, ne1, 39)), "offset"),
    "token_embd rows not the vocabulary": (
        _token_embd(lambda ne0, ne1, t: (ne0, ne1 - 32, t)),
        "token_embd",
    ),
    "an empty tensor name": (_empty_name, "empty name"),
    "blk.0.ffn_gate.weight missing": (
        _renamed("blk.0.ffn_gate.weight", "blk.0.ffn_gatX.weight"),
        "'blk.0.ffn_gate.weight' is missing",
    ),
    "general.architecture twice": (
        _key_again("general.architecture", STRING, _string("llama")),
        "'general.architecture' appears twice",
    ),
    "block_count twice": (
        _key_again("gemma3.block_count", UINT32, struct.pack("<I", 18)),
        "'gemma3.block_count' appears twice",
    ),
    "an RWKV vocabulary": (_tokenizer("rwkv"), "RWKV vocabulary"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_show_plan_and_ask_refuse_alike(
    case: str, gemma_path: Path, tmp_path: Path, localchat_home: Path
) -> None:
    mutate, expected = CASES[case]
    raw = RawHeader.read(gemma_path)
    mutate(raw)
    path = raw.write(tmp_path / "mutated.gguf")
    lines = []
    for args in (("show", str(path)), ("plan", str(path), "--cpu-only"),
                 ("ask", "-m", str(path), "--max-tokens", "1", "hi")):  # fmt: skip
        result = run_localchat(localchat_home, *args, timeout_s=120)
        assert_one_clean_error_line(result, ExitCode.CORRUPT_MODEL_FILE)
        assert expected in result.stderr, (args[0], result.stderr)
        lines.append(result.stderr)
    assert len(set(lines)) == 1, lines  # one validation, one message


def test_the_unmutated_rebuild_is_accepted(gemma_path: Path, tmp_path: Path) -> None:
    """The rebuild itself changes nothing: the refusals above come from the mutations."""
    path = RawHeader.read(gemma_path).write(tmp_path / "same.gguf")
    with path.open("rb") as copy, gemma_path.open("rb") as real:
        size = read_gguf_header(gemma_path).data_offset_bytes
        assert copy.read(size) == real.read(size)
    assert read_gguf_header(path).tensors == read_gguf_header(gemma_path).tensors
