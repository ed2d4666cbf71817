"""Remove models: one answer to "which files does MODEL mean" for ``rm`` and the app.

MODEL without a quant means every quant of it on disk; with one, that quant; a path
means the local file the user ran (only forgotten, never deleted).  A pip-delivered
model is the package's to remove.
"""

from __future__ import annotations

from dataclasses import dataclass

from localchat.engine.registry import model_formats
from localchat.errors import LocalchatError, ModelNotFound
from localchat.services.installed import installed_models
from localchat.services.resolve import ModelRef, resolve_model
from localchat.store import LocalModel, remove
from localchat.store.cache import wanted_repos


@dataclass(frozen=True)
class Removal:
    """What removing MODEL would delete (or, for paths, forget)."""

    label: str  # MODEL as resolved
    models: tuple[LocalModel, ...]

    @property
    def forgets_only(self) -> bool:
        """Only local paths: they are dropped from ``list``, their files left alone."""
        return all(m.source == "path" for m in self.models)

    @property
    def size_bytes(self) -> int:
        """Bytes the removal frees (a path's file is not deleted)."""
        return sum(m.size_bytes for m in self.models if m.source != "path")


def removal_for(model: str | ModelRef) -> Removal:
    """The models on disk MODEL means; ``ModelNotFound`` when none, ``LocalchatError``
    when they came with a pip package (``pip uninstall`` removes those)."""
    ref, _ = resolve_model(model)
    targets = [m for m in installed_models() if means(ref, m)]
    if not targets:
        raise ModelNotFound(f"{ref.display_name} is not on disk", hint="see `localchat list`")
    if all(m.source == "pip" for m in targets):
        package = ref.entry.pip.package if ref.entry and ref.entry.pip else "its package"
        raise LocalchatError(
            f"{ref.display_name} came with a pip package",
            hint=f"remove it with `pip uninstall {package}`",
        )
    return Removal(ref.display_name, tuple(m for m in targets if m.source != "pip"))


def remove_models(removal: Removal) -> int:
    """Delete (or forget) the models; returns the bytes freed."""
    return sum(remove(m) for m in removal.models)


def means(ref: ModelRef, model: LocalModel) -> bool:
    """Whether MODEL (``ref``) names ``model``."""
    if ref.kind == "path":
        return (
            model.source == "path"
            and ref.path is not None
            and ref.path.expanduser().resolve() == model.path.resolve()
        )
    if ref.quant and (model.quant or model.format).upper() != ref.quant.upper():
        return False
    if ref.entry is not None and model.source == "pip":
        return model.name == ref.entry.name
    repos = {r.lower() for r in wanted_repos(ref, model_formats())}
    return model.repo_id is not None and model.repo_id.lower() in repos
