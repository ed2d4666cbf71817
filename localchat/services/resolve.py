"""MODEL as the user wrote it → one ``ModelRef``, and what of it is on disk.

Every command resolves MODEL here, once, the same way: a catalog name (with a quant the
catalog lists), ``owner/repo[:QUANT]``, ``hf.co/...``, or a path; no MODEL means
settings.toml's ``default_model``, else the catalog's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from localchat.catalog import Catalog, load_catalog
from localchat.engine.registry import local_model_at, model_formats
from localchat.errors import LocalchatError, ModelNotFound
from localchat.paths import settings_file
from localchat.reference import ModelRef, parse_model_ref, with_quant
from localchat.settings import Settings, load_settings
from localchat.store import LocalModel, find_local

__all__ = [
    "ModelRef",
    "blame_settings",
    "catalog",
    "find_on_disk",
    "resolve_model",
    "with_quant",
]


def catalog() -> Catalog:
    """The model catalog (models.toml)."""
    return load_catalog()


def resolve_model(
    model: str | ModelRef | None = None,
    settings: Settings | None = None,
    *,
    allow_paths: bool = True,
) -> tuple[ModelRef, bool]:
    """MODEL as a ``ModelRef``, and whether it was the default (no MODEL given).

    ``allow_paths=False`` (names from the network) refuses anything path-like by its
    spelling.  An unknown name, or a quant the catalog does not list for a catalog
    name, is ``ModelNotFound`` here, before anything is looked up or downloaded.
    """
    if isinstance(model, ModelRef):
        return model, False
    if model:
        return parse_model_ref(model, load_catalog(), allow_paths=allow_paths), False
    configured = (settings or load_settings()).default_model
    if not configured:
        return parse_model_ref(load_catalog().default_model, load_catalog()), True
    with blame_settings(configured):
        return parse_model_ref(configured, load_catalog()), True


@contextmanager
def blame_settings(configured: str) -> Iterator[None]:
    """Errors about settings.toml's default_model say where that name came from."""
    try:
        yield
    except LocalchatError as exc:
        raise type(exc)(
            f"default_model {configured!r} from {settings_file()}: {exc.message}",
            hint=f"{exc.hint + '; ' if exc.hint else ''}change it there or pass -m MODEL",
        ) from exc


def find_on_disk(ref: ModelRef) -> LocalModel | None:
    """MODEL's files if they are all on disk (a path: the file or folder itself, which
    must be a model of some format), else None."""
    if ref.kind == "path":
        if ref.path is None:
            raise ModelNotFound(f"{ref.text!r} is not a path")
        return local_model_at(ref.path)
    return find_local(ref, model_formats())
