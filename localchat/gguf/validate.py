"""Check a (possibly split) GGUF model before llama.cpp opens it: every part present,
and each part's header passing ``gguf.checks`` (which ``read_gguf_header`` runs: magic,
header bounds, tensor data inside the file, nothing llama.cpp aborts on)."""

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
