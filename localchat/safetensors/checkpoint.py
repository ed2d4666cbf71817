"""A Hugging Face checkpoint folder: ``config.json`` plus safetensors shards.

``read_checkpoint(folder)`` checks what a loader needs before it starts (config
parses, every shard the index names is there and whole) and sums the weights from
the shard headers; ``read_remote_checkpoint`` does the same on the hub with HTTP
Range requests, so nothing is downloaded to plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.source import FileSource
from localchat.safetensors.header import SafetensorsHeader, read_header

INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 4 << 20


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds, read from its config and shard headers."""

    name: str
    config: dict[str, Any]
    shards: tuple[str, ...]
    headers: tuple[SafetensorsHeader, ...]
    source: str  # "header" | "remote header"

    @property
    def weights_bytes(self) -> int:
        return sum(h.data_bytes for h in self.headers)

    @property
    def tensor_names(self) -> set[str]:
        return {name for h in self.headers for name in h.tensors}

    @property
    def quant_method(self) -> str | None:
        quant = self.config.get("quantization_config")
        if not isinstance(quant, dict):
            return None
        return str(quant.get("quant_method", "")).lower() or None


def parse_config(data: bytes, name: str) -> dict[str, Any]:
    try:
        config = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelFile(f"{name}: config.json is not valid JSON", hint=_REPULL) from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise CorruptModelFile(f"{name}: config.json has no model_type", hint=_REPULL)
    return config


_REPULL = "delete the model (`localchat rm`) and pull it again"


def quant_method_of(folder: Path) -> str | None:
    """``quantization_config.quant_method`` of a folder's config.json (None if absent/bad)."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_bytes())
        method = config["quantization_config"]["quant_method"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(method).lower()


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CorruptModelFile(f"{folder.name}: config.json is missing", hint=_REPULL) from exc
    except OSError as exc:
        raise CorruptModelFile(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_config(data, folder.name)


def shard_names(folder: Path) -> tuple[str, ...]:
    """The shards the index names (all must exist), else every ``*.safetensors`` file."""
    index_path = folder / INDEX_FILE
    if index_path.exists():
        names = _index_shards(index_path.read_bytes(), folder.name)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CorruptModelFile(
                f"{folder.name}: shard {missing[0]} is missing ({len(missing)} of {len(names)})",
                hint=_REPULL,
            )
        return names
    names = tuple(sorted(p.name for p in folder.glob("*.safetensors")))
    if not names:
        raise CorruptModelFile(f"{folder.name}: no .safetensors weights", hint=_REPULL)
    return names


def _index_shards(data: bytes, name: str) -> tuple[str, ...]:
    try:
        weight_map = json.loads(data)["weight_map"]
        names = tuple(sorted(set(weight_map.values())))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptModelFile(f"{name}: {INDEX_FILE} is malformed", hint=_REPULL) from exc
    if not names or any("/" in n or n.startswith(".") for n in names):
        raise CorruptModelFile(f"{name}: {INDEX_FILE} names no usable shards", hint=_REPULL)
    return names


def read_checkpoint(folder: Path) -> CheckpointInfo:
    """Config and shard headers of a local checkpoint folder (``CorruptModelFile`` if not whole)."""
    folder = Path(folder)
    config = read_config(folder)
    names = shard_names(folder)
    headers = []
    for name in names:
        with FileSource(folder / name) as source:
            headers.append(read_header(source))
    return CheckpointInfo(folder.name, config, names, tuple(headers), "header")
