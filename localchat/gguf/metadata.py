"""Key/value metadata of a local GGUF file (the header's KV section), as Python values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localchat.gguf.header import GgufHeader, parse_header
from localchat.gguf.source import FileSource


def read_gguf_header(path: Path, *, keep_tokens: bool = False) -> GgufHeader:
    """The parsed header of one local GGUF file (``CorruptModelFile`` if malformed)."""
    with FileSource(Path(path)) as source:
        return parse_header(source, keep_tokens=keep_tokens)


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
    """Texts of the given token ids (e.g. huozi3's 57001 ``<|endofutterance|>``); absent ids left out."""
    header = read_gguf_header(path, keep_tokens=True)
    texts = {token_id: header.token_text(token_id) for token_id in token_ids}
    return {token_id: text for token_id, text in texts.items() if text is not None}
