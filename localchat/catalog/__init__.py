"""The model catalog: models.toml parsed into plain dataclasses.

``load_catalog()`` reads the models.toml shipped in the package (or the one at
the repository root in a source checkout) and validates every entry, raising
``ConfigError`` that names the entry and the field at fault.
"""

from localchat.catalog.loader import default_catalog_path, load_catalog, parse_catalog
from localchat.catalog.schema import (
    AWQ_QUANT,
    MODEL_FILE_TEMPLATE,
    ArchNumbers,
    AwqSource,
    Catalog,
    CatalogEntry,
    EmbeddingSpec,
    GgufSource,
    PipSource,
    QuantFiles,
)

__all__ = [
    "AWQ_QUANT",
    "MODEL_FILE_TEMPLATE",
    "ArchNumbers",
    "AwqSource",
    "Catalog",
    "CatalogEntry",
    "EmbeddingSpec",
    "GgufSource",
    "PipSource",
    "QuantFiles",
    "default_catalog_path",
    "load_catalog",
    "parse_catalog",
]
