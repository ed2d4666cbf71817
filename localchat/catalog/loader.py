"""Read and validate models.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from localchat.catalog.schema import (
    EMBEDDING_POOLINGS,
    ArchNumbers,
    AwqSource,
    Catalog,
    CatalogEntry,
    EmbeddingSpec,
    GgufSource,
    PipSource,
    QuantFiles,
)
from localchat.errors import ConfigError

T = TypeVar("T")


def default_catalog_path() -> Path:
    """The source checkout's models.toml when running from one, else the packaged copy."""
    checkout = Path(__file__).resolve().parents[2] / "models.toml"
    if checkout.is_file():
        return checkout
    return Path(str(resources.files("localchat") / "models.toml"))


@cache
def load_catalog(path: Path | None = None) -> Catalog:
    catalog_path = path or default_catalog_path()
    try:
        text = catalog_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read model catalog {catalog_path}: {exc.strerror}") from exc
    return parse_catalog(text, source=str(catalog_path))


def parse_catalog(text: str, source: str = "models.toml") -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{source}: no [models.<name>] tables")
    entries = {name: _parse_entry(name, table, source) for name, table in models.items()}
    default_model = data.get("default_model")
    if not isinstance(default_model, str) or default_model not in entries:
        raise ConfigError(f"{source}: default_model {default_model!r} is not a catalog entry")
    fallback = data.get("offline_fallback")
    if fallback is not None and fallback not in entries:
        raise ConfigError(f"{source}: offline_fallback {fallback!r} is not a catalog entry")
    return Catalog(entries=entries, default_model=default_model, offline_fallback=fallback)


def _parse_entry(name: str, table: Any, source: str) -> CatalogEntry:
    where = f"{source}: model {name!r}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    for key in ("family", "description", "chat_format", "arch"):
        if key not in table:
            raise ConfigError(f"{where}: missing field {key!r}")
    entry = CatalogEntry(
        name=name,
        family=_string(table, "family", where),
        description=_string(table, "description", where),
        chat_format=_string(table, "chat_format", where),
        arch=_parse_arch(table["arch"], where),
        sampling=_parse_sampling(table.get("sampling", {}), where),
        notes=str(table.get("notes", "")),
        gguf=_optional(_parse_gguf, table.get("gguf"), where),
        awq=_optional(_parse_awq, table.get("awq"), where),
        pip=_optional(_parse_pip, table.get("pip"), where),
        embedding=_optional(_parse_embedding, table.get("embedding"), where),
    )
    if not entry.formats:
        raise ConfigError(f"{where}: needs at least one of [gguf], [awq], [pip]")
    return entry


def _optional(parse: Callable[[Any, str], T], table: Any, where: str) -> T | None:
    """An optional sub-table (``[gguf]``, ``[awq]``, ``[pip]``): parsed when present."""
    return None if table is None else parse(table, where)


def _string(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: field {key!r} must be a non-empty string")
    return value


def _positive_int(table: dict[str, Any], key: str, where: str, *, allow_zero: bool = False) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{where}: field {key!r} must be a positive integer, got {value!r}")
    return value


def _parse_arch(table: Any, where: str) -> ArchNumbers:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [arch] must be a table")
    known = {f.name for f in fields(ArchNumbers)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown arch field(s) {', '.join(sorted(unknown))}")
    optional = {"n_expert", "n_expert_used", "n_swa"}
    values = {
        key: _positive_int(table, key, f"{where} [arch]", allow_zero=key in optional)
        for key in known
        if key in table or key not in optional
    }
    return ArchNumbers(**values)


def _parse_sampling(table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [sampling] must be a table")
    for key, value in table.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: sampling {key!r} must be a number")
    return {key: float(value) for key, value in table.items()}


def _parse_gguf(table: Any, where: str) -> GgufSource:
    where = f"{where} [gguf]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    quants_table = table.get("quants")
    if not isinstance(quants_table, dict) or not quants_table:
        raise ConfigError(f"{where}: needs at least one quants.<QUANT> entry")
    quants = {}
    for quant, spec in quants_table.items():
        quant_where = f"{where} quant {quant!r}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{quant_where}: must be a table with files and size_bytes")
        files = spec.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise ConfigError(f"{quant_where}: 'files' must be a non-empty list of paths")
        quants[quant] = QuantFiles(
            quant=quant,
            files=tuple(files),
            size_bytes=_positive_int(spec, "size_bytes", quant_where),
        )
    return GgufSource(
        repo=_repo(table, where),
        revision=str(table.get("revision", "main")),
        quants=quants,
    )


def _parse_awq(table: Any, where: str) -> AwqSource:
    where = f"{where} [awq]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    return AwqSource(
        repo=_repo(table, where),
        revision=str(table.get("revision", "main")),
        size_bytes=_positive_int(table, "size_bytes", where),
    )


def _parse_pip(table: Any, where: str) -> PipSource:
    where = f"{where} [pip]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    return PipSource(
        package=_string(table, "package", where),
        module=_string(table, "module", where),
        quant=_string(table, "quant", where),
        size_bytes=_positive_int(table, "size_bytes", where),
    )


def _parse_embedding(table: Any, where: str) -> EmbeddingSpec:
    where = f"{where} [embedding]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - {"pooling", "dimensions"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    pooling = _string(table, "pooling", where)
    if pooling not in EMBEDDING_POOLINGS:
        known = ", ".join(sorted(EMBEDDING_POOLINGS))
        raise ConfigError(f"{where}: pooling {pooling!r} is not one of {known}")
    return EmbeddingSpec(pooling=pooling, dimensions=_positive_int(table, "dimensions", where))


def _repo(table: dict[str, Any], where: str) -> str:
    repo = _string(table, "repo", where)
    if repo.count("/") != 1:
        raise ConfigError(f"{where}: repo {repo!r} must look like owner/name")
    return repo
