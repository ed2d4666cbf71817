"""Check GGUF files before llama.cpp opens them: magic, header, and that every tensor's
data lies inside the file (a truncated download fails here, not inside llama.cpp)."""

from __future__ import annotations

import re
from pathlib import Path

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader
from localchat.gguf.metadata import read_gguf_header

_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_parts(path: Path) -> list[Path]:
    """All parts of a llama.cpp split (``name-00001-of-00003.gguf``), else just ``path``."""
    match = _SPLIT_RE.match(path.name)
    if not match:
        return [path]
    count = int(match.group("count"))
    prefix = match.group("prefix")
    return [path.with_name(f"{prefix}-{no:05d}-of-{count:05d}.gguf") for no in range(1, count + 1)]


def check_tensor_bounds(header: GgufHeader) -> None:
    """Raise ``CorruptModelFile`` if any tensor's data extends past the end of the file."""
    size = header.file_size_bytes
    if size is None:
        return
    if header.data_offset_bytes > size and header.tensors:
        raise CorruptModelFile(f"{header.name}: truncated (no tensor data after the header)")
    for tensor in header.tensors:
        end = header.data_offset_bytes + tensor.offset + tensor.n_bytes
        if end > size:
            raise CorruptModelFile(
                f"{header.name}: truncated (tensor {tensor.name!r} ends at byte {end}, "
                f"file has {size})",
                hint="delete the file and download it again",
            )


def validate_gguf(path: Path) -> None:
    """Raise ``CorruptModelFile`` for a bad magic, a malformed header or a truncated file.

    For a split model pass the first part (any part works); every part is checked.
    """
    path = Path(path)
    parts = split_parts(path)
    for part in parts:
        if not part.is_file() and len(parts) > 1:
            raise CorruptModelFile(
                f"{part.name}: split part missing", hint="download every part of the model"
            )
        header = read_gguf_header(part)
        check_tensor_bounds(header)
        _check_split_count(header, len(parts))


def _check_split_count(header: GgufHeader, n_parts: int) -> None:
    count = header.metadata.get("split.count")
    if isinstance(count, int) and count != n_parts and n_parts > 1:
        raise CorruptModelFile(
            f"{header.name}: header says {count} split parts, the file name says {n_parts}"
        )
