"""Check a (possibly split) GGUF model before llama.cpp opens it: every part present,
and each part's header passing ``gguf.checks`` (which ``read_gguf_header`` runs: magic,
header bounds, tensor data inside the file, nothing llama.cpp aborts on)."""

from __future__ import annotations

from pathlib import Path

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader
from localchat.gguf.metadata import read_gguf_header, split_parts


def validate_gguf(path: Path) -> None:
    """Raise ``CorruptModelFile`` for a bad magic, a malformed header, a truncated file
    or one llama.cpp would abort on.

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
        _check_split_count(header, len(parts))


def _check_split_count(header: GgufHeader, n_parts: int) -> None:
    count = header.metadata.get("split.count")
    if isinstance(count, int) and count != n_parts and n_parts > 1:
        raise CorruptModelFile(
            f"{header.name}: header says {count} split parts, the file name says {n_parts}"
        )
