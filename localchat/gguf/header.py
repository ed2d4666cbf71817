"""A streaming GGUF header parser: key/values and tensor infos, never the tensor data.

It reads the header through a :class:`~localchat.gguf.source.ByteSource` in
growing chunks, skips big arrays (the tokenizer's scores, types, merges) without
decoding them, and keeps the token texts only when asked (as one blob plus
offsets, so any token's text can be looked up by id).  Every length is capped and
checked against the file size before anything is allocated (a count can never
ask for more items than the bytes left could hold), arrays nest at most
``MAX_ARRAY_DEPTH`` deep, and names are quoted short, so a malformed or truncated
file ends in ``CorruptModelFile`` with a one-line reason, never in an exception from
deep inside or a message quoting megabytes of binary data.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.source import ByteSource

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_STRING_BYTES = 64 << 20  # a chat template is KBs; 64 MiB means garbage
MAX_KEY_BYTES = 1 << 10  # keys are dotted names like "llama.rope.freq_base"
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME (64) including the terminating NUL
MAX_ARRAY_DEPTH = 3  # GGUF arrays of arrays exist; deeper nesting is garbage
MAX_KEPT_ITEMS = 1 << 20  # small arrays kept as Python lists, all keys together
MIN_KV_BYTES = 8 + 1 + 4  # key length, a 1-byte key, value type (values are >= 1 more)
MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8  # name length, name, n_dims, one dim, type, offset
MAX_ARRAY_ITEMS = 1 << 26  # vocabularies are < 1M; merges a few M
MAX_KV_COUNT = 1 << 20
MAX_TENSOR_COUNT = 1 << 20
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_LIST_ITEMS = 1 << 16  # arrays longer than this are skipped, only their length is kept
TOKENIZER_ARRAYS = frozenset(
    {
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
    }
)
TOKENS_KEY = "tokenizer.ggml.tokens"

# GGUF value type -> (struct code, size); 8 STRING and 9 ARRAY are handled apart.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header; ``offset`` is relative to the data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int

    @property
    def type_name(self) -> str:
        from gguf.constants import GGMLQuantizationType

        return GGMLQuantizationType(self.ggml_type).name


@dataclass(frozen=True)
class TokenTable:
    """The vocabulary's token texts, kept as the raw array bytes plus start offsets."""

    blob: bytes
    offsets: array[int]

    def __len__(self) -> int:
        return len(self.offsets)

    def text(self, token_id: int) -> str | None:
        if not 0 <= token_id < len(self.offsets):
            return None
        start = self.offsets[token_id]
        (length,) = struct.unpack_from("<Q", self.blob, start)
        return self.blob[start + 8 : start + 8 + length].decode("utf-8", errors="replace")


@dataclass
class GgufHeader:
    """Everything before the tensor data of one GGUF file."""

    name: str
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset_bytes: int  # where the tensor data starts (aligned)
    alignment: int
    file_size_bytes: int | None
    array_lengths: dict[str, int] = field(default_factory=dict)  # every array, skipped or not
    tokens: TokenTable | None = None

    @property
    def header_bytes(self) -> int:
        return self.data_offset_bytes

    @property
    def tensor_data_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def token_text(self, token_id: int) -> str | None:
        """The text of token ``token_id``; None if absent or the tokens were not kept."""
        return self.tokens.text(token_id) if self.tokens is not None else None


class _Cursor:
    """Sequential reads over a ByteSource through a growing read-ahead buffer."""

    def __init__(self, source: ByteSource, chunk_bytes: int, max_chunk_bytes: int) -> None:
        self.source = source
        self.pos = 0
        self._buf = b""
        self._buf_start = 0
        self._chunk = chunk_bytes
        self._max_chunk = max_chunk_bytes
        self.kept_items = 0  # items of arrays kept as lists so far

    @property
    def size(self) -> int | None:
        return self.source.size_bytes()

    def fail(self, reason: str) -> CorruptModelFile:
        return CorruptModelFile(
            f"{self.source.name}: {reason}", hint="delete the file and download it again"
        )

    def bytes_left(self) -> int | None:
        return None if self.size is None else self.size - self.pos

    def check_count(self, count: int, min_item_bytes: int, what: str) -> None:
        """Refuse ``count`` items that could not fit in the bytes left of the file."""
        left = self.bytes_left()
        if left is not None and count * min_item_bytes > left:
            raise self.fail(
                f"truncated or corrupt GGUF header ({what} count {count} at offset {self.pos} "
                f"cannot fit in the {left} bytes left)"
            )

    def truncated(self, needed: int) -> CorruptModelFile:
        size = f"{self.size} bytes" if self.size is not None else "shorter"
        return self.fail(
            f"truncated GGUF header (needs {needed} bytes at offset {self.pos}, file is {size})"
        )

    def take(self, n: int) -> bytes:
        start = self.pos - self._buf_start
        if start < 0 or start + n > len(self._buf):
            self._fill(n)
            start = 0
        self.pos += n
        return self._buf[start : start + n]

    def unpack(self, fmt: str, n: int) -> Any:
        start = self.pos - self._buf_start
        if start < 0 or start + n > len(self._buf):
            self._fill(n)
            start = 0
        self.pos += n
        return struct.unpack_from(fmt, self._buf, start)[0]

    def skip(self, n: int) -> None:
        self.pos += n
        if self.size is not None and self.pos > self.size:
            self.pos -= n
            raise self.truncated(n)

    def _fill(self, n: int) -> None:
        if self.size is not None and self.pos + n > self.size:
            raise self.truncated(n)
        length = max(n, self._chunk)
        self._chunk = min(self._chunk * 2, self._max_chunk)
        data = self.source.read(self.pos, length)
        if len(data) < n:
            raise self.truncated(n)
        self._buf, self._buf_start = data, self.pos

    def peek_buffer(self) -> tuple[bytes, int]:
        return self._buf, self._buf_start


def parse_header(
    source: ByteSource,
    *,
    keep_tokens: bool = False,
    chunk_bytes: int = 4 << 20,
    max_chunk_bytes: int = 64 << 20,
) -> GgufHeader:
    """Parse the KV section and tensor infos of the GGUF file behind ``source``."""
    cur = _Cursor(source, chunk_bytes, max_chunk_bytes)
    try:
        return _parse(cur, keep_tokens)
    except CorruptModelFile:
        raise
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise cur.fail(f"malformed GGUF header ({type(exc).__name__}: {exc})") from exc


def _parse(cur: _Cursor, keep_tokens: bool) -> GgufHeader:
    magic = cur.take(4)
    if magic != GGUF_MAGIC:
        raise cur.fail(f"not a GGUF file (starts with {magic!r})")
    version = cur.unpack("<I", 4)
    if version not in (2, 3):
        raise cur.fail(f"unsupported GGUF version {version} (big-endian or too old?)")
    n_tensors = cur.unpack("<Q", 8)
    n_kv = cur.unpack("<Q", 8)
    if n_tensors > MAX_TENSOR_COUNT or n_kv > MAX_KV_COUNT:
        raise cur.fail(f"implausible counts ({n_tensors} tensors, {n_kv} key/values)")
    cur.check_count(n_kv, MIN_KV_BYTES + 1, "key/value")
    metadata: dict[str, Any] = {}
    array_lengths: dict[str, int] = {}
    tokens: TokenTable | None = None
    for _ in range(n_kv):
        key = _string(cur, "key", MAX_KEY_BYTES)
        if not key or key in metadata or key in array_lengths:  # gguf.cpp refuses these
            raise cur.fail(f"key {quote(key)} appears twice" if key else "a key is empty")
        value_type = cur.unpack("<I", 4)
        if value_type == _ARRAY:
            value, length, table = _array(cur, key, keep_tokens and key == TOKENS_KEY, 1)
            array_lengths[key] = length
            tokens = table or tokens
            if value is not None and key not in TOKENIZER_ARRAYS:
                metadata[key] = value
        else:
            metadata[key] = _scalar(cur, value_type, key)
    alignment = _alignment(cur, metadata)
    cur.check_count(n_tensors, MIN_TENSOR_INFO_BYTES, "tensor")
    tensors_raw = [_tensor_info(cur) for _ in range(n_tensors)]
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = [_checked_tensor(cur, raw, alignment) for raw in tensors_raw]
    return GgufHeader(
        name=cur.source.name,
        version=version,
        metadata=metadata,
        tensors=tensors,
        data_offset_bytes=data_offset,
        alignment=alignment,
        file_size_bytes=cur.size,
        array_lengths=array_lengths,
        tokens=tokens,
    )


def _string(cur: _Cursor, what: str, max_bytes: int = MAX_STRING_BYTES) -> str:
    length = cur.unpack("<Q", 8)
    if length > max_bytes:
        raise cur.fail(f"implausible {what} length {length} at offset {cur.pos - 8}")
    return cur.take(length).decode("utf-8", errors="replace")


def quote(text: str, max_chars: int = 60) -> str:
    """A name from the file for a one-line message: repr'd, cut to ``max_chars``."""
    shown = repr(text[:max_chars])
    return shown if len(text) <= max_chars else f"{shown}…"


def _scalar(cur: _Cursor, value_type: int, key: str) -> Any:
    if value_type == _STRING:
        return _string(cur, f"string value of {quote(key)}")
    spec = _SCALARS.get(value_type)
    if spec is None:
        raise cur.fail(f"unknown value type {value_type} for key {quote(key)}")
    code, size = spec
    return cur.unpack("<" + code, size)


def _array(
    cur: _Cursor, key: str, keep_table: bool, depth: int
) -> tuple[list[Any] | None, int, TokenTable | None]:
    """(value or None when skipped, length, token table when asked for)."""
    item_type = cur.unpack("<I", 4)
    length = cur.unpack("<Q", 8)
    if length > MAX_ARRAY_ITEMS:
        raise cur.fail(f"implausible array length {length} for key {quote(key)}")
    if depth > MAX_ARRAY_DEPTH:
        raise cur.fail(f"arrays nested more than {MAX_ARRAY_DEPTH} deep in key {quote(key)}")
    spec = _SCALARS.get(item_type)
    min_item_bytes = {_STRING: 8, _ARRAY: 12}.get(item_type, spec[1] if spec else 1)
    cur.check_count(length, min_item_bytes, f"array {quote(key)} item")
    small = length <= MAX_LIST_ITEMS and key not in TOKENIZER_ARRAYS
    if small and cur.kept_items + length > MAX_KEPT_ITEMS:
        small = False  # enough arrays kept already: keep only this one's length
    if small:
        cur.kept_items += length
    if item_type == _STRING:
        if keep_table:
            return None, length, _string_table(cur, length)
        if small:
            items = [_string(cur, f"item of {quote(key)}") for _ in range(length)]
            return items, length, None
        _skip_strings(cur, length)
        return None, length, None
    if item_type == _ARRAY:
        if not small:
            raise cur.fail(f"nested array {quote(key)} too long ({length})")
        return [_array(cur, key, False, depth + 1)[0] for _ in range(length)], length, None
    if spec is None:
        raise cur.fail(f"unknown array item type {item_type} for key {quote(key)}")
    code, size = spec
    if not small:
        cur.skip(length * size)
        return None, length, None
    data = cur.take(length * size)
    return list(struct.unpack(f"<{length}{code}", data)), length, None


def _skip_strings(cur: _Cursor, count: int) -> None:
    for _ in range(count):
        length = cur.unpack("<Q", 8)
        if length > MAX_STRING_BYTES:
            raise cur.fail(f"implausible string length {length} at offset {cur.pos - 8}")
        cur.skip(length)


def _string_table(cur: _Cursor, count: int) -> TokenTable:
    start = cur.pos
    offsets = array("Q")
    for _ in range(count):
        offsets.append(cur.pos - start)
        length = cur.unpack("<Q", 8)
        if length > MAX_STRING_BYTES:
            raise cur.fail(f"implausible token length {length} at offset {cur.pos - 8}")
        cur.skip(length)
    end = cur.pos
    blob = cur.source.read(start, end - start)
    if len(blob) != end - start:
        raise cur.fail("token table changed while reading")
    return TokenTable(blob=blob, offsets=offsets)


def _alignment(cur: _Cursor, metadata: dict[str, Any]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(value, int) or value <= 0 or value & (value - 1) or value > 1 << 20:
        shown = value if isinstance(value, int) else f"of type {type(value).__name__}"
        raise cur.fail(f"invalid general.alignment {shown} (must be a power of two)")
    return value


def _tensor_info(cur: _Cursor) -> tuple[str, tuple[int, ...], int, int]:
    name = _string(cur, "tensor name", MAX_TENSOR_NAME_BYTES)
    n_dims = cur.unpack("<I", 4)
    if not 1 <= n_dims <= MAX_DIMS:
        raise cur.fail(f"tensor {quote(name)} has {n_dims} dimensions")
    shape = tuple(cur.unpack("<Q", 8) for _ in range(n_dims))
    ggml_type = cur.unpack("<I", 4)
    offset = cur.unpack("<Q", 8)
    return name, shape, ggml_type, offset


def _checked_tensor(
    cur: _Cursor, raw: tuple[str, tuple[int, ...], int, int], alignment: int
) -> TensorInfo:
    name, shape, ggml_type, offset = raw
    n_bytes = tensor_bytes(shape, ggml_type)
    if n_bytes is None:
        raise cur.fail(f"tensor {quote(name)}: unknown type {ggml_type} or bad shape {list(shape)}")
    if offset % alignment:
        raise cur.fail(f"tensor {quote(name)}: data offset {offset} is not {alignment}-aligned")
    return TensorInfo(name=name, shape=shape, ggml_type=ggml_type, offset=offset, n_bytes=n_bytes)


def tensor_bytes(shape: tuple[int, ...], ggml_type: int) -> int | None:
    """Bytes of a tensor of ``shape`` (ne0 first) and GGML type, or None if impossible."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    if not shape or any(d <= 0 or d >= 1 << 62 for d in shape) or shape[0] % block_size:
        return None
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    if n_elements >= 1 << 62:
        return None
    return n_elements // block_size * type_size
