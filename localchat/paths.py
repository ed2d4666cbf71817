"""Where localchat keeps its files.

Everything lives under platformdirs' per-user directories unless
``LOCALCHAT_HOME`` is set, in which case everything (config, data, logs,
history, and the model cache unless ``HF_HUB_CACHE``/``HF_HOME`` say otherwise)
lives below that one folder.  Tests set it to a temporary directory.  The one
exception is ``shared_cache_dir()``: what every home would otherwise copy (the
pip-delivered model) is kept once per user there (``LOCALCHAT_SHARED_CACHE``).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "localchat"


def home_override() -> Path | None:
    value = os.environ.get("LOCALCHAT_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    override = home_override()
    if override is not None:
        return override / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    override = home_override()
    if override is not None:
        return override / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def log_dir() -> Path:
    override = home_override()
    if override is not None:
        return override / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME))


def settings_file() -> Path:
    return config_dir() / "settings.toml"


def history_db() -> Path:
    return data_dir() / "history.sqlite3"


def llama_log_file() -> Path:
    return log_dir() / "llama.log"


def calibration_file() -> Path:
    """Measured buffer sizes from real loads, used to correct the planner."""
    return data_dir() / "calibration.json"


def pip_models_dir() -> Path:
    """Models that pip packages deliver: hard links to the copies in
    ``shared_pip_models_dir()`` (or, where no link can be made, the home's own copies)."""
    return data_dir() / "pip-models"


def shared_cache_dir() -> Path:
    """Per-user files that every LOCALCHAT_HOME shares instead of copying: deliberately
    outside LOCALCHAT_HOME.  ``LOCALCHAT_SHARED_CACHE`` moves it (tests do)."""
    value = os.environ.get("LOCALCHAT_SHARED_CACHE")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def shared_pip_models_dir() -> Path:
    """The one assembled copy of each pip-delivered model (``store.pip_models``)."""
    return shared_cache_dir() / "pip-models"


def partial_downloads_dir() -> Path:
    """Partial downloads kept across restarts so that ``pull`` can resume."""
    return hf_cache_dir() / ".localchat-partial"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (blobs + snapshots) that localchat shares with HF tools."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    override = home_override()
    if override is not None:
        return override / "hf-cache"
    from huggingface_hub import constants  # also honours XDG_CACHE_HOME and older variables

    return Path(constants.HF_HUB_CACHE).expanduser()


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
