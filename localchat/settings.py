"""The user's settings, persisted as TOML at ``localchat.paths.settings_file()``.

Unset values (``None``) mean "the model's or the planner's choice" and are left out of
the file.  Writes are atomic (temp file + rename), so a crash never leaves half a file.
Keys this version does not know are kept as they were.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from localchat.engine.base import SamplingParams
from localchat.errors import ConfigError

DEFAULT_THEME = "textual-dark"


@dataclass
class Settings:
    default_model: str | None = None
    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    context_size: int | None = None
    theme: str = DEFAULT_THEME
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def sampling(self, base: SamplingParams | None = None) -> SamplingParams:
        """The model's sampling (``base``) with the values set here laid over it."""
        base = base or SamplingParams()
        changes: dict[str, Any] = {}
        if self.temperature is not None:
            changes["temperature"] = self.temperature
        if self.top_p is not None:
            changes["top_p"] = self.top_p
        if self.max_tokens is not None:
            changes["max_tokens"] = self.max_tokens
        return dataclasses.replace(base, **changes)

    def validate(self) -> Settings:
        """Raise ``ConfigError`` naming the first value out of range."""
        if self.temperature is not None and not 0.0 <= self.temperature <= 5.0:
            raise ConfigError(f"temperature {self.temperature} is out of range", hint="use 0-5")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p {self.top_p} is out of range", hint="use a value in (0, 1]")
        for name in ("max_tokens", "context_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be positive, not {value}")
        return self


_TYPES: dict[str, tuple[type, ...]] = {
    "default_model": (str,),
    "system_prompt": (str,),
    "temperature": (float, int),
    "top_p": (float, int),
    "max_tokens": (int,),
    "context_size": (int,),
    "theme": (str,),
}


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings, or the defaults when there is no file yet."""
    path = path or _default_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint="fix or delete the file"
        ) from exc
    return settings_from_dict(data, source=str(path))


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings atomically; returns the file written."""
    settings.validate()
    path = path or _default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, dumps_toml(settings_to_dict(settings)))
    return path


def settings_from_dict(data: dict[str, Any], *, source: str = "settings") -> Settings:
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TYPES:
            extra[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            wanted = " or ".join(t.__name__ for t in _TYPES[key])
            raise ConfigError(f"{source}: {key} must be {wanted}, not {value!r}")
        known[key] = float(value) if _TYPES[key][0] is float else value
    try:
        return Settings(**known, extra=extra).validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from exc


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    data = {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if f.name != "extra" and getattr(settings, f.name) is not None
    }
    return {**settings.extra, **data}


def dumps_toml(data: dict[str, Any]) -> str:
    """Flat TOML: one ``key = value`` line per scalar (strings, numbers, booleans)."""
    lines = ["# localchat settings; edit here or in the app (Settings, ctrl+s to save)"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in data.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot save {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    raise ConfigError(f"cannot save a {type(value).__name__} in settings")


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append("\\t")
        elif char == "\r":
            escaped.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_path() -> Path:
    from localchat.paths import settings_file

    return settings_file()
