"""The safetensors header: 8 bytes of little-endian length, then a JSON table of tensors.

Read from any ``ByteSource`` (a local file, or a hub file by HTTP Range), so the
planner can weigh a checkpoint without downloading it.  Anything malformed is
``CorruptModelFile``; tensor data is never read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.source import ByteSource

MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data_bytes: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """One shard's tensors; ``file_bytes`` is the size the header implies."""

    name: str
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        return sum(t.data_bytes for t in self.tensors.values())

    @property
    def file_bytes(self) -> int:
        return 8 + self.header_bytes + self.data_bytes


def read_header(source: ByteSource) -> SafetensorsHeader:
    """Parse the header of ``source``; checks offsets against the file size if known."""
    prefix = source.read(0, 8)
    if len(prefix) < 8:
        raise CorruptModelFile(f"{source.name}: too short to be a safetensors file")
    (header_bytes,) = struct.unpack("<Q", prefix)
    if not 2 <= header_bytes <= MAX_HEADER_BYTES:
        raise CorruptModelFile(f"{source.name}: not a safetensors file (header length)")
    raw = source.read(8, header_bytes)
    if len(raw) < header_bytes:
        raise CorruptModelFile(f"{source.name}: truncated safetensors header")
    try:
        table = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelFile(f"{source.name}: safetensors header is not JSON") from exc
    if not isinstance(table, dict):
        raise CorruptModelFile(f"{source.name}: safetensors header is not a table")
    header = _parse_table(source.name, table, header_bytes)
    size = source.size_bytes()
    if size is not None and size < header.file_bytes:
        raise CorruptModelFile(
            f"{source.name}: truncated ({size} bytes, the header says {header.file_bytes})",
            hint="delete it and pull again",
        )
    return header


def _parse_table(name: str, table: dict[str, Any], header_bytes: int) -> SafetensorsHeader:
    metadata = table.pop("__metadata__", None) or {}
    tensors: dict[str, TensorEntry] = {}
    end_max = 0
    for tensor_name, spec in table.items():
        entry, end = _parse_entry(name, tensor_name, spec)
        tensors[tensor_name] = entry
        end_max = max(end_max, end)
    if end_max != sum(t.data_bytes for t in tensors.values()):
        raise CorruptModelFile(f"{name}: safetensors tensor offsets overlap or leave gaps")
    return SafetensorsHeader(name, tensors, dict(metadata), header_bytes)


def _parse_entry(name: str, tensor_name: str, spec: Any) -> tuple[TensorEntry, int]:
    try:
        dtype = str(spec["dtype"])
        shape = tuple(int(d) for d in spec["shape"])
        start, end = (int(v) for v in spec["data_offsets"])
        nbytes = prod(shape) * DTYPE_BYTES[dtype]
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptModelFile(f"{name}: bad safetensors entry for {tensor_name}") from exc
    if start < 0 or end - start != nbytes:
        raise CorruptModelFile(f"{name}: {tensor_name} has {end - start} bytes, expected {nbytes}")
    return TensorEntry(tensor_name, dtype, shape, nbytes), end
