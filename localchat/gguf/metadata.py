"""Key/value metadata of a local GGUF file (the header's KV section), as Python values."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.checks import check_header
from localchat.gguf.header import GgufHeader, parse_header
from localchat.gguf.source import FileSource


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
    return header


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
