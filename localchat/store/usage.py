"""When each model was last used, and which local-path models the user ran.

Stored in ``data_dir()/usage.json`` as ``{"models": {key: {"last_used": ts, ...}}}``.
The key is ``owner/repo:QUANT`` for hub models, ``pip:<name>`` and ``path:<abs path>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from localchat.jsonfile import locked_json, read_json
from localchat.paths import data_dir
from localchat.store.model import LocalModel
from localchat.store.registry import LEGACY_FORMAT


@dataclass(frozen=True)
class UsageRecord:
    key: str
    name: str
    last_used: float
    path: str | None = None
    quant: str | None = None
    format: str = LEGACY_FORMAT  # the model format's name; records before it was kept: GGUF


def usage_file() -> Path:
    return data_dir() / "usage.json"


def mark_used(model: LocalModel, *, now: float | None = None) -> None:
    """Record that ``model`` was just loaded (``list`` shows it as last used)."""
    key = model.key
    entry = {
        "name": model.name,
        "last_used": time.time() if now is None else now,
        "quant": model.quant,
        "format": model.format,
        "path": str(model.path.resolve()) if key.startswith("path:") else None,
    }
    try:
        with locked_json(usage_file()) as data:
            data.setdefault("models", {})[key] = entry
    except OSError:
        pass  # usage is a nicety; never fail a chat over it


def last_used(key: str) -> float | None:
    entry = read_json(usage_file()).get("models", {}).get(key)
    return float(entry["last_used"]) if isinstance(entry, dict) and "last_used" in entry else None


def all_usage() -> list[UsageRecord]:
    records = read_json(usage_file()).get("models", {})
    return [
        UsageRecord(
            key=key,
            name=str(value.get("name", key)),
            last_used=float(value.get("last_used", 0)),
            path=value.get("path"),
            quant=value.get("quant"),
            format=str(value.get("format", LEGACY_FORMAT)),
        )
        for key, value in records.items()
        if isinstance(value, dict)
    ]


def forget_usage(key: str) -> None:
    with locked_json(usage_file()) as data:
        data.setdefault("models", {}).pop(key, None)
