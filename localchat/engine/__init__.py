"""Inference backends behind one interface (``engine.base.Backend``).

This is the one place that picks a backend: by the type of its settings
(``engine.settings``), which ``settings_for_plan`` builds from the planner's plan.
Backend modules are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localchat.engine.interrupt import cancel_loads as cancel_loads  # re-exported
from localchat.engine.settings import (
    AwqSettings,
    BackendSettings,
    LlamaSettings,
    RemoteSettings,
    awq_settings,
    llama_settings,
)
from localchat.errors import ConfigError

if TYPE_CHECKING:
    from localchat.engine.base import Backend
    from localchat.planner.plan import Plan

# settings type -> "module:class" of the backend that loads it
BACKENDS: dict[type, str] = {
    LlamaSettings: "localchat.engine.llama:LlamaBackend",
    RemoteSettings: "localchat.engine.remote_engine:RemoteBackend",
    AwqSettings: "localchat.engine.awq.backend:AwqBackend",
}

RetryLayers = Callable[[int], int | None]  # attempt (1..3) -> GPU layers to retry with, or None


def settings_for_plan(
    plan: Plan, model_path: Path, overrides: Mapping[str, Any] | None = None
) -> BackendSettings:
    """The settings the plan's backend loads ``model_path`` with, plus user overrides."""
    make = awq_settings if plan.format == "awq" else llama_settings
    settings = make(plan, model_path)
    if overrides:
        known = {f.name for f in fields(settings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown load setting(s) for this model: {', '.join(unknown)}")
        settings = replace(settings, **overrides)
    return settings


def load_backend(settings: BackendSettings, retry: RetryLayers | None = None) -> Backend:
    """Load the model described by ``settings`` with the backend for that settings type.

    ``retry(attempt)`` gives the GPU layers to try after an out-of-memory load (the
    planner's ``Plan.retry_gpu_layers``), or None to give up.
    """
    target = BACKENDS.get(type(settings))
    if target is None:
        raise TypeError(f"no backend loads {type(settings).__name__}")
    module_name, class_name = target.split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(settings, retry)


def open_backend(
    plan: Plan, model_path: Path, overrides: Mapping[str, Any] | None = None
) -> Backend:
    """Settings from the plan, then load, backing off GPU layers as the planner says."""
    return load_backend(settings_for_plan(plan, model_path, overrides), plan.retry_gpu_layers)
