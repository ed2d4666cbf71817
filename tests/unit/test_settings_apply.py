"""settings.toml is applied once, in the library (api.py), for ask, the app and library users."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from localchat.api import DEFAULT_MAX_TOKENS, LoadedModel, resolve_ref
from localchat.catalog import load_catalog
from localchat.errors import ModelNotFound
from localchat.formats import resolve_format
from localchat.formats.builtin import BASE_MODEL_MAX_TOKENS
from localchat.reference import parse_model_ref
from localchat.settings import Settings, load_settings, save_settings


def loaded(name: str, settings: Settings) -> LoadedModel:
    """A LoadedModel for its sampling rules only (no engine is needed for those)."""
    ref = parse_model_ref(name, load_catalog())
    fmt = resolve_format(ref.entry, {})
    return LoadedModel(ref, None, None, None, fmt, settings)  # type: ignore[arg-type]


def test_settings_lay_over_the_models_sampling() -> None:
    plain = loaded("qwen2.5-0.5b", Settings()).default_sampling()
    assert plain.max_tokens == DEFAULT_MAX_TOKENS and plain.stop_on_repetition
    mine = loaded(
        "qwen2.5-0.5b",
        Settings(temperature=0.1, top_p=0.5, max_tokens=7, repetition_guard=False),
    ).default_sampling()
    assert (mine.temperature, mine.top_p, mine.max_tokens) == (0.1, 0.5, 7)
    assert not mine.stop_on_repetition


def test_base_models_get_a_shorter_default_limit() -> None:
    assert loaded("gemma-3-270m", Settings()).default_sampling().max_tokens == BASE_MODEL_MAX_TOKENS
    assert loaded("gemma-3-270m", Settings(max_tokens=99)).default_sampling().max_tokens == 99


def test_system_prompt_comes_from_settings() -> None:
    assert loaded("qwen2.5-0.5b", Settings()).system_prompt is None
    assert loaded("qwen2.5-0.5b", Settings(system_prompt="Be brief.")).system_prompt == "Be brief."


def test_saving_keeps_unknown_tables(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('theme = "nord"\n[plugins.spell]\nlanguages = ["en", "de"]\nlevel = 2\n')
    settings = load_settings(path)
    settings.temperature = 0.3
    save_settings(settings, path)
    data = tomllib.loads(path.read_text())
    assert data["plugins"] == {"spell": {"languages": ["en", "de"], "level": 2}}
    assert data["temperature"] == 0.3 and data["theme"] == "nord"
    assert load_settings(path).extra == {
        "plugins": {"spell": {"languages": ["en", "de"], "level": 2}}
    }


def test_repetition_guard_must_be_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("repetition_guard = false\n")
    assert load_settings(path).repetition_guard is False
    path.write_text("repetition_guard = 0\n")
    with pytest.raises(Exception, match="repetition_guard must be bool"):
        load_settings(path)


def test_a_bad_default_model_names_settings_toml(localchat_home: Path) -> None:
    save_settings(Settings(default_model="no-such-model"))
    with pytest.raises(ModelNotFound) as caught:
        resolve_ref(None)
    assert "default_model 'no-such-model' from " in caught.value.message
    assert str(localchat_home / "config" / "settings.toml") in caught.value.message
    assert "pass -m MODEL" in (caught.value.hint or "")
