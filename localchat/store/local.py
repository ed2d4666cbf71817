"""Find a model's files on disk without touching the network; pip-delivered models."""

from __future__ import annotations

from collections.abc import Sequence

from localchat.catalog.schema import CatalogEntry
from localchat.reference import ModelRef
from localchat.store.cache import find_in_hf_cache
from localchat.store.model import LocalModel, StoreFormat
from localchat.store.pip_models import pip_model_file, pip_model_listing
from localchat.store.usage import last_used

PIP_MODEL_FORMAT = "gguf"  # the catalog's pip packages deliver one GGUF file


def find_local(ref: ModelRef, formats: Sequence[StoreFormat] = ()) -> LocalModel | None:
    """MODEL's files if they are all on disk, else None.

    The store knows what was pulled and what came with pip; ``formats`` (handed in by the
    services from ``engine.registry``) say which catalog repos hold which format and which
    files make a model.  A path is not the store's to judge: the services ask the formats.
    """
    if ref.kind == "path":
        return None
    entry = ref.entry
    if entry is not None and entry.pip is not None and entry.gguf is None:
        return pip_model(entry)
    return find_in_hf_cache(ref, formats)


def pip_model(entry: CatalogEntry) -> LocalModel | None:
    """The model a catalog entry's pip package delivers, if that package is installed."""
    source = entry.pip
    path = pip_model_file(entry.name, source) if source is not None else None
    if source is None or path is None:
        return None
    return LocalModel(
        name=entry.name,
        format=PIP_MODEL_FORMAT,
        path=path,
        files=(path,),
        quant=source.quant,
        source="pip",
        last_used=last_used(f"pip:{entry.name}"),
    )


def listed_pip_model(entry: CatalogEntry) -> LocalModel | None:
    """The pip package's model as ``list`` shows it, never assembling the 253 MB file
    (its size is the package's declared one until then); None when not installed."""
    source = entry.pip
    listed = pip_model_listing(entry.name, source) if source is not None else None
    if source is None or listed is None:
        return None
    return LocalModel(
        name=entry.name,
        format=PIP_MODEL_FORMAT,
        path=listed.path,
        files=(listed.path,),
        quant=source.quant,
        source="pip",
        last_used=last_used(f"pip:{entry.name}"),
        declared_size_bytes=None if listed.on_disk else listed.size_bytes,
    )
