"""engine.logs: llama.cpp's log goes to a size-capped, rotated file, never to the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.llamacpp import log as logs


def test_the_log_is_rotated_by_size(localchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", 10_000)
    router = logs.LlamaLogRouter()
    line = "llama_model_loader: - kv  12 something = 42\n"
    for _ in range(1000):  # 45 KB
        router.write(line)
    router.close()
    folder = localchat_home / "logs"
    assert sorted(p.name for p in folder.iterdir()) == ["llama.log", "llama.log.1"]
    assert all(p.stat().st_size <= 10_000 for p in folder.iterdir())
    assert (folder / "llama.log").read_text().endswith(line)


def test_an_unwritable_log_folder_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "home"
    not_a_dir.write_text("")
    monkeypatch.setenv("LOCALCHAT_HOME", str(not_a_dir))
    router = logs.LlamaLogRouter()
    with router.capture() as captured:
        router.write("load text\n")
    assert captured == ["load text\n"]  # the planner still gets the load's log
