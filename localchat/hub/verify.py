"""Checksums the hub records for each file: LFS sha256, or the git blob sha1 for small files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from localchat.errors import CorruptModelFile

DigestKind = Literal["sha256", "git-sha1"]
READ_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ExpectedDigest:
    kind: DigestKind
    hexdigest: str
    size_bytes: int

    def new_hasher(self) -> hashlib._Hash:
        if self.kind == "sha256":
            return hashlib.sha256()
        hasher = hashlib.sha1()
        hasher.update(f"blob {self.size_bytes}\0".encode())  # git's object header
        return hasher


def hash_file_prefix(path: Path, hasher: hashlib._Hash, length_bytes: int) -> None:
    """Feed the first ``length_bytes`` of ``path`` into ``hasher``."""
    remaining = length_bytes
    with path.open("rb", buffering=0) as handle:
        while remaining > 0:
            chunk = handle.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)


def file_matches(path: Path, expected: ExpectedDigest) -> bool:
    if path.stat().st_size != expected.size_bytes:
        return False
    hasher = expected.new_hasher()
    hash_file_prefix(path, hasher, expected.size_bytes)
    return hasher.hexdigest() == expected.hexdigest


def verify_file(path: Path, expected: ExpectedDigest, *, label: str) -> None:
    """Raise CorruptModelFile if ``path`` does not hash to what the hub recorded."""
    if not file_matches(path, expected):
        raise CorruptModelFile(
            f"{label} does not match the hub's {expected.kind} {expected.hexdigest[:12]}…",
            hint=f"delete it with `localchat rm` and pull again ({path})",
        )
