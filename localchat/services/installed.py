"""What is on disk (``localchat list``, the app's model list, a server's model list)."""

from __future__ import annotations

from localchat.engine.registry import model_formats
from localchat.store import LocalModel, list_local


def installed_models() -> list[LocalModel]:
    """Every model on disk, each once: pulled, other HF tools', pip-delivered, paths run."""
    return list_local(model_formats())


def client_name(model: LocalModel) -> str | None:
    """The name a client (an OpenAI or Ollama API user) uses for a model on disk, or None
    when it has none: a bare path (a server never opens paths it is sent)."""
    quant = model.quant
    if model.source == "pip":
        return f"{model.name}:{quant}" if quant else model.name
    if model.repo_id:
        return f"{model.repo_id}:{quant}" if quant else model.repo_id
    return None


def named_models() -> list[tuple[str, LocalModel]]:
    """(client name, model) for every model on disk a client can name."""
    named = [(client_name(m), m) for m in installed_models()]
    return [(name, m) for name, m in named if name]
