"""The user's settings, persisted as TOML at ``localchat.paths.settings_file()``.

Unset values (``None``) mean "the model's or the planner's choice" and are left out of
the file.  Writes are atomic (temp file + rename), so a crash never leaves half a file.
Keys this version does not know are kept as they were.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from localchat.addresses import parse_endpoints
from localchat.errors import ConfigError
from localchat.jsonfile import write_text_atomic
from localchat.paths import settings_file
from localchat.types import TEMPERATURE_MAX, TOP_P_MAX, SamplingParams

DEFAULT_THEME = "textual-dark"
PARALLEL_AUTO = "auto"
MAX_PARALLEL = 256  # slots one served model may have (llama.cpp's n_seq_max limit)


@dataclass
class Settings:
    default_model: str | None = None
    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    context_size: int | None = None
    threads: int | None = None  # CPU threads for llama.cpp; None: chosen from the hardware
    repetition_guard: bool | None = None  # None: on (engine.repetition)
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..." (`localchat worker`)
    parallel: int | str | None = None  # `serve`'s slots per model: N or "auto" (None: auto)
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
        if self.repetition_guard is not None:
            changes["stop_on_repetition"] = self.repetition_guard
        return dataclasses.replace(base, **changes)

    def validate(self) -> Settings:
        """Raise ``ConfigError`` naming the first value out of range."""
        if self.temperature is not None and not 0.0 <= self.temperature <= TEMPERATURE_MAX:
            raise ConfigError(
                f"temperature {self.temperature} is out of range", hint=f"use 0-{TEMPERATURE_MAX:g}"
            )
        if self.top_p is not None and not 0.0 < self.top_p <= TOP_P_MAX:
            raise ConfigError(
                f"top_p {self.top_p} is out of range", hint=f"use a value in (0, {TOP_P_MAX:g}]"
            )
        if self.rpc:
            parse_endpoints(self.rpc)  # ConfigError naming a malformed endpoint
        if self.parallel is not None:
            self.parallel = parse_parallel(self.parallel)  # "4" is 4, "Auto" is "auto"
        for name in ("max_tokens", "context_size", "threads"):
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
    "threads": (int,),
    "repetition_guard": (bool,),
    "rpc": (str,),
    "parallel": (int, str),
    "theme": (str,),
}


def parse_parallel(value: int | str) -> int | str:
    """``serve --parallel`` and settings.toml's ``parallel``: a slot count, or "auto"."""
    text = str(value).strip().lower()
    if text == PARALLEL_AUTO:
        return PARALLEL_AUTO
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_PARALLEL:
        raise ConfigError(
            f"parallel must be {PARALLEL_AUTO!r} or a slot count from 1 to {MAX_PARALLEL}, "
            f"not {value!r}"
        )
    return int(text)


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
    write_text_atomic(path, dumps_toml(settings_to_dict(settings)))
    return path


def settings_from_dict(data: dict[str, Any], *, source: str = "settings") -> Settings:
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TYPES:
            extra[key] = value
            continue
        wanted_types = _TYPES[key]
        if not isinstance(value, wanted_types) or (
            isinstance(value, bool) and bool not in wanted_types
        ):
            wanted = " or ".join(t.__name__ for t in wanted_types)
            raise ConfigError(f"{source}: {key} must be {wanted}, not {value!r}")
        known[key] = (
            float(value) if isinstance(value, int | float) and _TYPES[key][0] is float else value
        )
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
    """The settings file's text: a comment line, then ``tomli_w``'s TOML (tables kept)."""
    import tomli_w

    try:
        body = tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot save the settings: {exc}") from exc
    return "# localchat settings; edit here or in the app (Settings, ctrl+s to save)\n" + body


def _default_path() -> Path:
    return settings_file()
