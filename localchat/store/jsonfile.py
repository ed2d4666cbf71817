"""A small JSON document on disk, updated under a file lock and replaced atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def locked_json(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the document; whatever the caller changes in it is written back on exit."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        data = read_json(path)
        yield data
        write_json_atomic(path, data)


def update_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    with locked_json(path) as data:
        change(data)
