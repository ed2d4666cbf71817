"""The pip-delivered model: assembled under LOCALCHAT_HOME, checked once, then only stat()ed."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.store.local import pip_model_file

pytestmark = pytest.mark.slow


def test_assembled_under_localchat_home_and_verified_once(
    localchat_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = load_catalog().get("gemma-3-270m")
    assert entry is not None and entry.pip is not None
    module = pytest.importorskip(entry.pip.module)  # the offline-model extra (third party)
    folder = tmp_path / "pip-models"
    path = pip_model_file(entry.name, entry.pip, directory=folder)
    assert path is not None and path.parent == folder and path.stat().st_size > 200_000_000
    assert not list(folder.glob("*.partial"))

    calls: list[object] = []
    real_assemble = module.assemble

    def counting_assemble(*args: object, **kwargs: object) -> object:  # spy on the package
        calls.append(args)
        return real_assemble(*args, **kwargs)

    monkeypatch.setattr(importlib.import_module(entry.pip.module), "assemble", counting_assemble)
    assert pip_model_file(entry.name, entry.pip, directory=folder) == path
    assert calls == []  # size and mtime match what was checked: no re-hash

    os.utime(path, ns=(0, 0))  # the file changed under us: check (and rebuild) it again
    assert pip_model_file(entry.name, entry.pip, directory=folder) == path
    assert len(calls) == 1


def test_default_location_is_under_localchat_home(localchat_home: Path) -> None:
    from localchat.paths import pip_models_dir

    assert pip_models_dir() == localchat_home / "data" / "pip-models"
