"""Model formats and the backends that run them, registered the way ``llm`` registers models.

A **format** (GGUF, AWQ) knows its files — a local file or folder, the files of a hub
repo that make up one quant, what a download must look like — and how to describe, plan
and load a model of its kind.  A **backend** is the class that loads one settings type
(``engine.settings``).  Nothing above ``engine/`` tells formats apart: it asks here.

Every plugin is a module with a ``register(registry)`` hook, called once, on first use:
the built-in ones (``DEFAULT_PLUGINS``) first, then each installed package's
``localchat.plugins`` entry point, so the built-ins register exactly as a third party
would.  The order formats register in is the order of preference when nothing else
decides (a catalog model with GGUF and AWQ and no quant asked gets its GGUF).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from localchat.errors import ConfigError, ModelNotFound

if TYPE_CHECKING:  # the seam's types; importing the registry must stay cheap (engine's __init__)
    from localchat.catalog import CatalogEntry
    from localchat.engine.base import Backend, LoadSettings
    from localchat.hardware.types import Hardware
    from localchat.hub import Listing, Selection
    from localchat.planner.plan import Plan, PlanRequest
    from localchat.store import FileGroup, LocalModel

DEFAULT_PLUGINS = (
    "localchat.engine.gguf_format",  # GGUF on llama.cpp
    "localchat.engine.awq.format",  # AWQ checkpoints on transformers + GPTQModel
    "localchat.engine.remote_plugin",  # an OpenAI-compatible server
)
ENTRY_POINT_GROUP = "localchat.plugins"

ChooseQuant = Callable[[Mapping[str, int]], str]  # quant -> bytes: the quant to pull
RetryLayers = Callable[[int], int | None]  # attempt (1..3) -> GPU layers to retry with
BackendFactory: TypeAlias = "Callable[[Any, RetryLayers | None], Backend]"


@dataclass(frozen=True)
class ModelFacts:
    """What a format reads from a model's files without loading it."""

    metadata: Mapping[str, Any]  # GGUF-style keys (``formats.resolve_format`` reads them)
    n_ctx_train: int | None = None  # the context it was trained for, when known


class ModelFormat(Protocol):
    """One model format.  ``name`` is what records keep; the rest answers for its files."""

    @property
    def name(self) -> str: ...

    @property
    def files_hint(self) -> str:
        """Its files in a few words, for messages: "a .gguf file"."""
        ...

    def owns_quant(self, quant: str) -> bool:
        """Whether MODEL:QUANT names this format (AWQ: ``AWQ``; GGUF: Q4_K_M, ...)."""
        ...

    def catalog_repo(self, entry: CatalogEntry) -> tuple[str, str] | None:
        """(repo, revision) of this format in a catalog entry, or None."""
        ...

    def catalog_files(self, entry: CatalogEntry, quant: str | None) -> Sequence[FileGroup]:
        """The file groups models.toml lists for ``quant`` (every quant: best first)."""
        ...

    def snapshot_models(self, snapshot: Path) -> Sequence[FileGroup]:
        """This format's models in a cache snapshot another HF tool downloaded."""
        ...

    def local_model(self, path: Path) -> LocalModel | None:
        """``path`` as a model of this format; None when it is not one (raises when it
        is meant as one but is damaged)."""
        ...

    def select(
        self, listing: Listing, quant: str | None, entry: CatalogEntry | None, choose: ChooseQuant
    ) -> Selection | None:
        """The files of one quant in a hub listing (``choose`` picks when ``quant`` is
        None); None when the repo has none of this format; ``ModelNotFound`` when it has,
        but not that quant."""
        ...

    def offered_quants(self, listing: Listing) -> dict[str, int]:
        """The quants of this format a hub listing offers, with their sizes in bytes."""
        ...

    def check_files(self, paths: tuple[Path, ...]) -> None:
        """Raise ``CorruptModelFile`` when downloaded files are not what they should be."""
        ...

    def describe(self, model: LocalModel) -> ModelFacts:
        """Check the files as a load would and read what the chat format needs."""
        ...

    def plan(self, model: LocalModel, hardware: Hardware, request: PlanRequest) -> Plan:
        """The planner's plan for loading these files on ``hardware``."""
        ...

    def load_settings(self, plan: Plan, path: Path) -> LoadSettings:
        """The backend settings that load ``path`` as ``plan`` says."""
        ...


class Registry:
    """The registered formats (in preference order) and backends (by settings type)."""

    def __init__(self) -> None:
        self._formats: dict[str, ModelFormat] = {}
        self._backends: dict[type, str] = {}

    def add_format(self, fmt: ModelFormat) -> None:
        if fmt.name in self._formats:
            raise ConfigError(f"two plugins register the model format {fmt.name!r}")
        self._formats[fmt.name] = fmt

    def add_backend(self, settings_type: type, target: str) -> None:
        """``target`` is ``"module:Class"``, imported only when a model is loaded (backend
        libraries are heavy); the class is called as ``Class(settings, retry)``."""
        self._backends[settings_type] = target

    @property
    def formats(self) -> tuple[ModelFormat, ...]:
        return tuple(self._formats.values())

    def format_named(self, name: str) -> ModelFormat:
        fmt = self._formats.get(name)
        if fmt is None:
            known = ", ".join(self._formats) or "none"
            raise ConfigError(
                f"no installed backend runs {name!r} models", hint=f"installed formats: {known}"
            )
        return fmt

    def formats_for_quant(self, quant: str | None) -> tuple[ModelFormat, ...]:
        """The formats MODEL:QUANT may mean: those that own ``quant``, else all of them."""
        owners = tuple(f for f in self.formats if quant is not None and f.owns_quant(quant))
        return owners or self.formats

    def local_model_at(self, path: Path) -> LocalModel:
        """A file or folder as a model, by the first format that recognises it."""
        if not _exists(path):
            raise ModelNotFound(f"no such file: {path}", hint="check the path")
        for fmt in self.formats:
            model = fmt.local_model(path)
            if model is not None:
                return model
        kind = "folder" if path.is_dir() else "file"
        hints = ", ".join(fmt.files_hint for fmt in self.formats)
        raise ModelNotFound(f"{path} is not a model {kind}", hint=f"give {hints}, or a model name")

    def backend_factory(self, settings: object) -> BackendFactory:
        target = self._backends.get(type(settings))
        if target is None:
            raise TypeError(f"no backend loads {type(settings).__name__}")
        module_name, class_name = target.split(":")
        factory: BackendFactory = getattr(importlib.import_module(module_name), class_name)
        return factory


_lock = threading.Lock()
_loaded: list[Registry] = []


def registry() -> Registry:
    """The registry, with every plugin registered (once, on first use)."""
    with _lock:
        if not _loaded:
            _loaded.append(load_plugins(Registry()))
        return _loaded[0]


def load_plugins(target: Registry, names: Sequence[str] = DEFAULT_PLUGINS) -> Registry:
    """Call each plugin's ``register(registry)``: ``names``, then the entry points."""
    from importlib.metadata import entry_points  # 50 ms to import: only when plugins load

    for name in names:
        importlib.import_module(name).register(target)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        plugin = point.load()
        getattr(plugin, "register", plugin)(target)
    return target


def model_formats() -> tuple[ModelFormat, ...]:
    return registry().formats


def format_named(name: str) -> ModelFormat:
    return registry().format_named(name)


def formats_for_quant(quant: str | None) -> tuple[ModelFormat, ...]:
    return registry().formats_for_quant(quant)


def local_model_at(path: Path) -> LocalModel:
    return registry().local_model_at(path)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long to be a file's
        return False
