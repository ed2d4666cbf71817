"""Models one could run: the catalog's, and the quants a hub repo offers."""

from __future__ import annotations

from localchat.catalog import CatalogEntry, load_catalog
from localchat.engine.registry import model_formats
from localchat.hub import fetch_listing

__all__ = ["CatalogEntry", "catalog_entries", "hub_quants", "listed_quants"]


def catalog_entries() -> list[CatalogEntry]:
    """Every model the catalog names, in models.toml's order."""
    return list(load_catalog().entries.values())


def listed_quants(entry: CatalogEntry) -> dict[str, int]:
    """The quants a model list shows for a catalog model, with their sizes: models.toml's
    per-quant files, else the pip package's one (a checkpoint is opened as ``MODEL:AWQ``)."""
    if entry.gguf is not None:
        return {q.quant: q.size_bytes for q in entry.gguf.quants.values()}
    if entry.pip is not None:
        return {entry.pip.quant: entry.pip.size_bytes}
    return {}


def hub_quants(repo_id: str) -> dict[str, int]:
    """The quants ``owner/repo`` offers on the hub, in every format localchat runs, with
    their sizes in bytes (the repo is listed: errors are the hub's)."""
    listing = fetch_listing(repo_id, "main")
    quants: dict[str, int] = {}
    for fmt in model_formats():
        quants.update(fmt.offered_quants(listing))
    return quants
