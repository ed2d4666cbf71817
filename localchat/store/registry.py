"""What localchat pulled: one record per repo and quant, plus the commit each repo is pinned to.

Stored in ``data_dir()/pulled.json``.  The files themselves live in the Hugging Face
cache; a record only says which snapshot files make up the model, so ``list``,
``rm`` and offline lookups need no network.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localchat.jsonfile import locked_json, read_json
from localchat.paths import data_dir

# Records from older versions: without a format name (all were GGUF), or without ``opens``.
LEGACY_FORMAT = "gguf"
LEGACY_MODEL_SUFFIX = ".gguf"


@dataclass(frozen=True)
class PulledModel:
    name: str  # catalog name, or owner/repo for hub models
    repo_id: str
    revision: str  # what was asked for ("main")
    commit: str  # the 40-hex commit the files came from
    quant: str | None
    format: str  # the model format's name (``engine.registry``)
    files: tuple[str, ...]  # paths inside snapshots/<commit>/
    size_bytes: int
    pulled_at: float
    opens: str = ""  # the path in the snapshot the engine opens; "" for the snapshot folder

    @property
    def key(self) -> str:
        return record_key(self.repo_id, self.quant or self.format)


def record_key(repo_id: str, quant_or_format: str) -> str:
    return f"{repo_id.lower()}:{quant_or_format.upper()}"


def registry_file() -> Path:
    return data_dir() / "pulled.json"


def all_pulled() -> list[PulledModel]:
    records = read_json(registry_file()).get("models", {})
    return [_from_dict(value) for value in records.values() if isinstance(value, dict)]


def find_pulled(repo_ids: list[str], quant: str | None = None) -> list[PulledModel]:
    """Records for any of these repos (and this quant, case-insensitive), newest first."""
    wanted = {repo.lower() for repo in repo_ids}
    found = [
        record
        for record in all_pulled()
        if record.repo_id.lower() in wanted
        and (quant is None or (record.quant or record.format).upper() == quant.upper())
    ]
    return sorted(found, key=lambda r: r.pulled_at, reverse=True)


def save_pulled(record: PulledModel) -> None:
    with locked_json(registry_file()) as data:
        data.setdefault("models", {})[record.key] = asdict(record)
        data.setdefault("pins", {})[pin_key(record.repo_id, record.revision)] = record.commit


def forget_pulled(record: PulledModel) -> None:
    with locked_json(registry_file()) as data:
        data.setdefault("models", {}).pop(record.key, None)
        still_used = any(
            m.get("repo_id", "").lower() == record.repo_id.lower() for m in data["models"].values()
        )
        if not still_used:
            pins = data.setdefault("pins", {})
            for key in [k for k in pins if k.startswith(record.repo_id.lower() + "@")]:
                del pins[key]


def pin_key(repo_id: str, revision: str) -> str:
    return f"{repo_id.lower()}@{revision}"


def pinned_commit(repo_id: str, revision: str) -> str | None:
    """The commit an earlier pull of ``repo_id`` at ``revision`` resolved; re-pulls stay on it."""
    pins = read_json(registry_file()).get("pins", {})
    value = pins.get(pin_key(repo_id, revision))
    return value if isinstance(value, str) else None


def _from_dict(value: dict[str, Any]) -> PulledModel:
    files = tuple(str(f) for f in value.get("files", ()))
    opens = value.get("opens")
    return PulledModel(
        name=str(value.get("name", "")),
        repo_id=str(value.get("repo_id", "")),
        revision=str(value.get("revision", "main")),
        commit=str(value.get("commit", "")),
        quant=value.get("quant"),
        format=str(value.get("format", LEGACY_FORMAT)),
        files=files,
        size_bytes=int(value.get("size_bytes", 0)),
        pulled_at=float(value.get("pulled_at", time.time())),
        opens=str(opens) if isinstance(opens, str) else _legacy_opens(files),
    )


def _legacy_opens(files: tuple[str, ...]) -> str:
    """Records from before ``opens`` was kept: a model file's first part, or the folder of a
    checkpoint (whose first file is a config or a shard, not a model file)."""
    return files[0] if files and Path(files[0]).suffix.lower() == LEGACY_MODEL_SUFFIX else ""
