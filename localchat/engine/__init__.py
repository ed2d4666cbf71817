"""Inference backends behind one interface (``engine.base.Backend``).

Backends and model formats register themselves (``engine.registry``): a backend is
picked by the type of its settings, and a plan's settings come from the format the plan
is for.  Backend modules are imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localchat.engine.interrupt import cancel_loads as cancel_loads  # re-exported
from localchat.engine.registry import RetryLayers, format_named, registry
from localchat.errors import ConfigError

if TYPE_CHECKING:
    from localchat.engine.base import Backend, LoadSettings
    from localchat.planner.plan import Plan


def settings_for_plan(
    plan: Plan, model_path: Path, overrides: Mapping[str, Any] | None = None
) -> LoadSettings:
    """The settings the plan's format loads ``model_path`` with, plus user overrides."""
    settings = format_named(plan.format).load_settings(plan, model_path)
    if overrides:
        return with_overrides(settings, overrides)
    return settings


def with_overrides(settings: LoadSettings, overrides: Mapping[str, Any]) -> LoadSettings:
    """``settings`` with some fields replaced (``ConfigError`` naming unknown ones)."""
    if not is_dataclass(settings) or isinstance(settings, type):
        raise ConfigError("this model's backend takes no load settings")
    known = {f.name for f in fields(settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown load setting(s) for this model: {', '.join(unknown)}")
    changed: LoadSettings = replace(settings, **overrides)
    return changed


def load_backend(settings: LoadSettings, retry: RetryLayers | None = None) -> Backend:
    """Load the model described by ``settings`` with the backend for that settings type.

    ``retry(attempt)`` gives the GPU layers to try after an out-of-memory load (the
    planner's ``Plan.retry_gpu_layers``), or None to give up.
    """
    return registry().backend_factory(settings)(settings, retry)


def open_backend(
    plan: Plan, model_path: Path, overrides: Mapping[str, Any] | None = None
) -> Backend:
    """Settings from the plan, then load, backing off GPU layers as the planner says."""
    return load_backend(settings_for_plan(plan, model_path, overrides), plan.retry_gpu_layers)
