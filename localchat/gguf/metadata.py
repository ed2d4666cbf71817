"""Key/value metadata of a local GGUF file (the header's KV section), as Python values."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.checks import check_header, check_model, is_split
from localchat.gguf.header import GgufHeader, parse_header
from localchat.gguf.source import FileSource

_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def read_gguf_header(path: Path, *, keep_tokens: bool = False) -> GgufHeader:
    """The parsed, checked header of one local GGUF file (``CorruptModelFile`` if malformed,
    truncated, or holding anything llama.cpp would abort on: ``gguf.checks``).

    Headers are cached per (path, size, mtime) with the vocabulary's texts kept
    (``keep_tokens`` is implied): ``ask`` validates, reads the metadata of and plans
    the same file, and walking a 262k-token vocabulary costs 0.1-0.2 s.  Treat the
    result as read-only.
    """
    path = Path(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError as exc:
        raise CorruptModelFile(f"{path}: file not found") from exc
    except OSError as exc:
        raise CorruptModelFile(f"{path}: cannot open ({exc.strerror})") from exc
    return _cached_header(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _cached_header(path: str, size_bytes: int, mtime_ns: int) -> GgufHeader:
    with FileSource(Path(path)) as source:
        header = parse_header(source, keep_tokens=True)
    check_header(header)  # the one validation ask, show and plan all go through
    if is_split(header) and header.metadata.get("split.no", 0) == 0:
        check_model([header, *_later_parts(Path(path), header)])
    return header


def split_parts(path: Path) -> list[Path]:
    """All parts of a llama.cpp split (``name-00001-of-00003.gguf``), else just ``path``."""
    match = _SPLIT_RE.match(path.name)
    if not match:
        return [path]
    count = int(match.group("count"))
    prefix = match.group("prefix")
    return [path.with_name(f"{prefix}-{no:05d}-of-{count:05d}.gguf") for no in range(1, count + 1)]


def _later_parts(path: Path, first: GgufHeader) -> list[GgufHeader]:
    """The headers of a split model's other parts, found by file name as llama.cpp finds
    them; [] when the name does not follow the pattern (llama.cpp then refuses the file)."""
    parts = split_parts(path)
    if parts[0] != path or len(parts) != first.metadata.get("split.count"):
        return []
    missing = next((part for part in parts if not part.is_file()), None)
    if missing is not None:
        raise CorruptModelFile(
            f"{missing.name}: split part missing", hint="download every part of the model"
        )
    return [read_gguf_header(part) for part in parts[1:]]


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """All scalar and small-array fields; tokenizer vocab arrays are left out.

    ``tokenizer.bos_token`` / ``tokenizer.eos_token`` (token texts) are added for
    chat templates.  Raises ``CorruptModelFile`` on anything malformed.
    """
    header = read_gguf_header(path, keep_tokens=True)
    meta = dict(header.metadata)
    for name in ("bos", "eos"):
        token_id = meta.get(f"tokenizer.ggml.{name}_token_id")
        if isinstance(token_id, int):
            text = header.token_text(token_id)
            if text is not None:
                meta[f"tokenizer.{name}_token"] = text
    return meta


def gguf_token_texts(path: Path, token_ids: list[int]) -> dict[int, str]:
    """Texts of the given token ids, e.g. huozi3's 57001 ``<|endofutterance|>``.

    Ids outside the vocabulary are left out of the result.
    """
    header = read_gguf_header(path, keep_tokens=True)
    texts = {token_id: header.token_text(token_id) for token_id in token_ids}
    return {token_id: text for token_id, text in texts.items() if text is not None}
