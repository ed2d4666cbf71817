"""Small files on disk, replaced atomically; JSON documents also updated under a file lock.

Every JSON file localchat keeps (usage, pulled models, calibration, the bandwidth cache)
goes through ``update_json``, so two processes (two ``ask``s, or ``ask`` and the app)
never lose each other's changes, and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCK_TIMEOUT_S = 30


def read_json(path: Path) -> dict[str, Any]:
    """The document, or ``{}`` when the file is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def locked_json(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the document; whatever the caller changes in it is written back on exit."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
        data = read_json(path)
        yield data
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def update_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    with locked_json(path) as data:
        change(data)
