"""Byte sources a GGUF header is parsed from: a local file, or anything with ranged reads.

The parser asks for ``read(offset, length)`` and copes with short reads at the
end of the data; a source that knows its total size reports it, so truncation
is caught before anything is read past the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from localchat.errors import CorruptModelFile


class ByteSource(Protocol):
    """Random access to the bytes of one GGUF file."""

    name: str

    def size_bytes(self) -> int | None:
        """Total size, or None where the source cannot tell."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer only at the end of the data."""
        ...


class FileSource:
    """A local file, read with ``os.pread`` (no shared file position)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as exc:
            raise CorruptModelFile(f"{self.path}: file not found") from exc
        except OSError as exc:
            raise CorruptModelFile(f"{self.path}: cannot open ({exc.strerror})") from exc
        self._size = os.fstat(self._fd).st_size

    def size_bytes(self) -> int | None:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self._size or length <= 0:
            return b""
        try:
            return os.pread(self._fd, min(length, self._size - offset), offset)
        except OSError as exc:
            raise CorruptModelFile(f"{self.name}: read failed ({exc.strerror})") from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesSource:
    """Bytes already in memory (tests, or a header fetched earlier)."""

    def __init__(self, data: bytes, name: str = "<bytes>", size_bytes: int | None = None) -> None:
        self.data = data
        self.name = name
        self._size = len(data) if size_bytes is None else size_bytes

    def size_bytes(self) -> int | None:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + max(length, 0)]
