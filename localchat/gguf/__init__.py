"""GGUF headers without reading tensor data (``hub.ranges`` reads them from the hub).

``read_gguf(paths)`` gives a :class:`GgufInfo` (architecture numbers + tensor bytes
grouped as llama.cpp places them); ``read_gguf_metadata(path)`` the key/values;
``validate_gguf(path)`` checks a file before llama.cpp opens it.  Everything malformed
is ``CorruptModelFile``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from localchat.gguf.header import GgufHeader, TensorInfo, TokenTable, parse_header
from localchat.gguf.info import GgufInfo, LayerBytes, info_from_headers, quant_from_file_type
from localchat.gguf.metadata import (
    gguf_token_texts,
    read_gguf_header,
    read_gguf_metadata,
    split_parts,
)
from localchat.gguf.source import ByteSource, BytesSource, FileSource
from localchat.gguf.validate import validate_gguf


def read_gguf(paths: Path | Sequence[Path]) -> GgufInfo:
    """A local model's :class:`GgufInfo`.  One path of a split model brings in its siblings."""
    if isinstance(paths, str | Path):
        paths = split_parts(Path(paths))
    headers = [read_gguf_header(Path(p)) for p in paths]
    return info_from_headers(headers, source="header")


__all__ = [
    "ByteSource",
    "BytesSource",
    "FileSource",
    "GgufHeader",
    "GgufInfo",
    "LayerBytes",
    "TensorInfo",
    "TokenTable",
    "gguf_token_texts",
    "info_from_headers",
    "parse_header",
    "quant_from_file_type",
    "read_gguf",
    "read_gguf_header",
    "read_gguf_metadata",
    "split_parts",
    "validate_gguf",
]
