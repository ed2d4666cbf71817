"""Persisted user settings: defaults, round trip, validation, atomic writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from localchat.errors import ConfigError
from localchat.settings import Settings, dumps_toml, load_settings, save_settings
from localchat.types import SamplingParams


def test_defaults_when_no_file(localchat_home: Path) -> None:
    assert load_settings() == Settings()


def test_round_trip_in_localchat_home(localchat_home: Path) -> None:
    settings = Settings(
        default_model="gemma-3-270m",
        system_prompt='Be "brief".\nUse \\ and tabs\t.',
        temperature=0.2,
        top_p=0.9,
        max_tokens=256,
        context_size=2048,
        theme="nord",
    )
    path = save_settings(settings)
    assert path == localchat_home / "config" / "settings.toml"
    assert load_settings() == settings
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unset_values_are_left_out_and_unknown_keys_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('theme = "nord"\nfuture_key = 3\n')
    settings = load_settings(path)
    assert settings.theme == "nord" and settings.extra == {"future_key": 3}
    save_settings(settings, path)
    data = tomllib.loads(path.read_text())
    assert data == {"future_key": 3, "system_prompt": "", "theme": "nord"}


def test_integers_accepted_for_floats(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("temperature = 1\n")
    assert load_settings(path).temperature == 1.0


@pytest.mark.parametrize(
    "text, match",
    [
        ("temperature = 9.0", "temperature"),
        ('max_tokens = "many"', "max_tokens must be int"),
        ("context_size = 0", "context_size must be positive"),
        ("top_p = true", "top_p"),
        ("= broken", "not valid TOML"),
    ],
)
def test_bad_values_raise_config_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=match):
        load_settings(path)


def test_save_refuses_invalid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        save_settings(Settings(top_p=0.0), tmp_path / "s.toml")
    assert not (tmp_path / "s.toml").exists()


def test_sampling_overlays_the_models_defaults() -> None:
    base = SamplingParams(temperature=0.8, top_p=0.9, top_k=20)
    assert Settings().sampling(base) == base
    overlaid = Settings(temperature=0.1, max_tokens=5).sampling(base)
    assert (overlaid.temperature, overlaid.top_p, overlaid.top_k, overlaid.max_tokens) == (
        0.1,
        0.9,
        20,
        5,
    )


def test_dumps_toml_parses_back_control_characters() -> None:
    data = {"system_prompt": "a\x01b\u00e9"}
    assert tomllib.loads(dumps_toml(data)) == data
