"""``pull`` by catalog name, ``services.pull.ensure_local``, ``list`` and ``rm`` on a real cache.

Real code and files throughout; the hub is the loopback fake hub (``HF_ENDPOINT``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.errors import ExitCode, ModelNotFound
from localchat.paths import hf_cache_dir
from localchat.reference import parse_model_ref
from tests.fixtures.fakehub import (
    FakeHub,
    cache_files,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
    make_gguf_like,
)

QWEN_REPO = "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF"
QWEN_FILE = "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"


def localchat(hub: FakeHub, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "localchat", *args],
        capture_output=True, text=True, env=full_env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def listed(hub: FakeHub, home: Path) -> list[dict]:
    result = localchat(hub, home, "list", "--json")
    assert result.returncode == 0, result.stderr
    return [m for m in json.loads(result.stdout) if m["source"] != "pip"]


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:  # noqa: F811
    fake_hub.add_repo(QWEN_REPO, {QWEN_FILE: make_gguf_like(1_500_000, 11), "README.md": b"hi"})
    return fake_hub


def test_catalog_name_pull_list_and_rm(hub: FakeHub, localchat_home: Path) -> None:
    result = localchat(hub, localchat_home, "pull", "qwen2.5-0.5b:q4_k_m")
    assert result.returncode == 0, result.stderr
    (model,) = listed(hub, localchat_home)
    assert (model["name"], model["quant"], model["format"]) == ("qwen2.5-0.5b", "Q4_K_M", "gguf")
    assert model["size_bytes"] == 1_500_000 and model["last_used"] is None

    refused = localchat(hub, localchat_home, "rm", "qwen2.5-0.5b")
    assert refused.returncode == ExitCode.ERROR
    assert "stdin is not a terminal" in refused.stderr and "-y" in refused.stderr
    assert QWEN_FILE in cache_files(hf_cache_dir())

    removed = localchat(hub, localchat_home, "rm", "-y", "qwen2.5-0.5b")
    assert removed.returncode == 0, removed.stderr
    assert "freed 1.5 MB" in removed.stderr
    assert listed(hub, localchat_home) == []
    assert not any(hf_cache_dir().glob("models--*/blobs/*"))


def test_rm_of_something_not_on_disk(hub: FakeHub, localchat_home: Path) -> None:
    result = localchat(hub, localchat_home, "rm", "-y", "qwen2.5-0.5b")
    assert result.returncode == ExitCode.MODEL_NOT_FOUND
    assert "not on disk" in result.stderr


def test_ensure_local_pulls_and_reports_progress(hub: FakeHub, localchat_home: Path) -> None:
    from localchat.services import PullProgress
    from localchat.services.pull import ensure_local

    ref = parse_model_ref("qwen2.5-0.5b:Q4_K_M", load_catalog())
    with pytest.raises(ModelNotFound) as info:
        ensure_local(ref, allow_download=False)
    assert "localchat pull qwen2.5-0.5b:Q4_K_M" in info.value.one_line()

    events: list[PullProgress] = []
    local = ensure_local(ref, progress=events.append)
    assert local.path.name == QWEN_FILE and local.quant == "Q4_K_M"
    assert events[-1].stage == "done" and events[-1].overall == 1.0
    assert any(e.stage == "download" for e in events)

    from localchat.store import mark_used

    mark_used(local)  # what `ask` does once the model is loaded
    hub.reset_counters()
    again = ensure_local(ref, allow_download=False)
    assert (again.path, again.files, again.revision) == (local.path, local.files, local.revision)
    assert hub.log == []
    (model,) = listed(hub, localchat_home)
    assert model["last_used"] is not None


def test_files_from_other_hf_tools_are_reused(hub: FakeHub, localchat_home: Path) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(QWEN_REPO, QWEN_FILE, cache_dir=str(hf_cache_dir()), endpoint=hub.url)
    (model,) = listed(hub, localchat_home)
    assert model["source"] == "hf-cache" and model["quant"] == "Q4_K_M"
    hub.reset_counters()
    result = localchat(hub, localchat_home, "pull", "qwen2.5-0.5b:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert hub.bytes_served() == 0


def test_path_models_that_ran_are_listed(hub: FakeHub, localchat_home: Path, tmp_path: Path):
    from localchat.services.pull import ensure_local

    model_file = tmp_path / "mine-Q5_K_M.gguf"
    model_file.write_bytes(make_gguf_like(10_000))
    from localchat.store import mark_used

    mark_used(ensure_local(parse_model_ref(str(model_file), load_catalog())))
    (model,) = listed(hub, localchat_home)
    assert (model["source"], model["quant"], model["path"]) == ("path", "Q5_K_M", str(model_file))
    result = localchat(hub, localchat_home, "rm", "-y", str(model_file))
    assert result.returncode == 0, result.stderr
    assert model_file.exists()  # only forgotten, never deleted
    assert listed(hub, localchat_home) == []


def test_no_quant_lets_the_planner_choose(fake_hub: FakeHub, localchat_home: Path) -> None:  # noqa: F811
    fake_hub.add_repo(
        "acme/choice-GGUF",
        {"c-Q8_0.gguf": make_gguf_like(400_000, 1), "c-Q2_K.gguf": make_gguf_like(200_000, 2)},
    )
    result = localchat(fake_hub, localchat_home, "pull", "acme/choice-GGUF")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).name == "c-Q8_0.gguf"  # best quality; both fit easily
    assert "acme/choice-GGUF:Q8_0" in result.stderr
