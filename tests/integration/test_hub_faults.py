"""``localchat pull`` against a misbehaving hub: what the user sees, the exit code, the cache.

Real code end to end (real HTTP, real files, a real ``localchat`` subprocess); the
only stand-in is the hub's internet address: ``HF_ENDPOINT`` points at the loopback
fake hub in ``tests/fixtures/fakehub.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from localchat.paths import hf_cache_dir, partial_downloads_dir
from tests.fixtures.fakehub import (
    FakeHub,
    Fault,
    cache_files,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
    make_gguf_like,
)
from tests.integration.cli import assert_one_clean_error_line

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"
SIZE = 3_000_000
DATA = make_gguf_like(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()


def pull(hub: FakeHub, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "localchat", "pull", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_cache_clean(expected: dict[str, str]) -> None:
    """Every file visible in a snapshot has the right sha256; only ``expected`` are there."""
    visible = cache_files(hf_cache_dir())
    assert set(visible) == set(expected), visible
    for name, path in visible.items():
        assert sha256_of(path) == expected[name], name


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:  # noqa: F811
    fake_hub.add_repo(REPO, {FILE: DATA, "tiny-Q8_0.gguf": make_gguf_like(1_000_000, 1)})
    return fake_hub


def test_pull_lands_in_the_hf_cache_and_hf_tools_reuse_it(hub: FakeHub, localchat_home: Path):
    result = pull(hub, localchat_home, f"{REPO}:q4_k_m")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert sha256_of(path) == SHA
    assert path.is_symlink() and path.resolve().parent.name == "blobs"
    assert path.resolve().name == SHA  # blob named by the LFS sha256, as huggingface_hub does
    assert_cache_clean({FILE: SHA})

    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cache = str(hf_cache_dir())
    assert try_to_load_from_cache(REPO, FILE, cache_dir=cache) == str(path)
    hub.reset_counters()
    again = hf_hub_download(REPO, FILE, cache_dir=cache, endpoint=hub.url)
    assert Path(again) == path
    assert hub.bytes_served() == 0  # huggingface_hub reused our file


def test_dropped_connection_resumes_with_range(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, FILE, Fault("drop", at_byte=1_000_000, times=2))
    result = pull(hub, localchat_home, f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert "connection closed at 1000000 of 3000000 bytes; retrying" in result.stderr
    assert hub.bytes_served(FILE) == SIZE  # nothing fetched twice
    assert any(r.range_header == "bytes=1000000-" for r in hub.requests("GET", FILE))
    assert_cache_clean({FILE: SHA})


def test_wrong_bytes_are_deleted_and_reported(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, FILE, Fault("wrong_bytes"))
    result = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.DOWNLOAD_FAILED)
    assert "fail the sha256 check" in result.stderr and "bad bytes were deleted" in result.stderr
    assert_cache_clean({})
    assert not any(partial_downloads_dir().rglob("*.incomplete"))


@pytest.mark.parametrize("status", [401, 403])
def test_gated_repo_says_where_to_accept_and_how_to_log_in(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
    status: int,
) -> None:
    fake_hub.add_repo("meta/gated-GGUF", {FILE: DATA}, gated_status=status)
    result = pull(fake_hub, localchat_home, "-q", "meta/gated-GGUF:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.DOWNLOAD_FAILED)
    line = result.stderr
    assert "gated" in line and f"{fake_hub.url}/meta/gated-GGUF" in line
    assert "HF_TOKEN" in line and "hf auth login" in line
    assert_cache_clean({})


def test_unknown_repo_is_model_not_found(hub: FakeHub, localchat_home: Path) -> None:
    result = pull(hub, localchat_home, "-q", "acme/nothing-here:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)
    assert "acme/nothing-here was not found" in result.stderr


def test_file_404_on_download_is_model_not_found(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, FILE, Fault("status", status=404, error_code="EntryNotFound", on_head=True))
    result = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)
    assert_cache_clean({})


def test_unknown_quant_lists_what_the_repo_has(hub: FakeHub, localchat_home: Path) -> None:
    result = pull(hub, localchat_home, "-q", f"{REPO}:Q3_K_S")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)
    assert "Q4_K_M (3.0 MB)" in result.stderr and "Q8_0 (1.0 MB)" in result.stderr


def test_500_then_success_retries(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, FILE, Fault("status", status=500, times=2, on_head=True))
    result = pull(hub, localchat_home, f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert "HTTP 500; retrying" in result.stderr
    assert_cache_clean({FILE: SHA})


def test_persistent_failure_gives_up_and_keeps_the_partial(
    hub: FakeHub, localchat_home: Path
) -> None:
    hub.set_fault(REPO, FILE, Fault("drop", at_byte=1_200_000))  # always cut at 1.2 MB
    result = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.DOWNLOAD_FAILED)
    assert "gave up" in result.stderr and "kept for resuming" in result.stderr
    assert_cache_clean({})
    (partial,) = partial_downloads_dir().rglob("*.incomplete")
    assert partial.stat().st_size == 1_200_000

    hub.clear_faults()
    hub.reset_counters()
    result = pull(hub, localchat_home, f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert hub.bytes_served(FILE) == SIZE - 1_200_000
    assert_cache_clean({FILE: SHA})


def test_slow_trickle_completes_with_progress(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, "tiny-Q8_0.gguf", Fault("trickle", bytes_per_s=1_000_000))
    result = pull(hub, localchat_home, f"{REPO}:Q8_0")
    assert result.returncode == 0, result.stderr
    assert "tiny-Q8_0.gguf" in result.stderr and "ETA" in result.stderr
    assert "verified" in result.stderr


def test_stalled_server_times_out_and_resumes(hub: FakeHub, localchat_home: Path) -> None:
    import time

    hub.set_fault(REPO, FILE, Fault("stall", at_byte=500_000, stall_s=3, times=1))
    result = pull(hub, localchat_home, f"{REPO}:Q4_K_M", HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert result.returncode == 0, result.stderr
    assert "Timeout" in result.stderr
    deadline = time.monotonic() + 5
    while len(hub.requests("GET", FILE)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the stalled request is logged when its handler wakes up
    assert hub.bytes_served(FILE) == SIZE
    assert_cache_clean({FILE: SHA})


def test_not_enough_disk_refuses_before_downloading(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
) -> None:
    fake_hub.add_repo("acme/huge-GGUF", {FILE: DATA}, declared_sizes={FILE: 10**15})
    result = pull(fake_hub, localchat_home, "-q", "acme/huge-GGUF:Q4_K_M")
    assert_one_clean_error_line(result, ExitCode.DOWNLOAD_FAILED)
    assert "needs 1000.0 TB" in result.stderr and str(hf_cache_dir()) in result.stderr
    assert fake_hub.requests("GET", FILE) == []


def test_offline_mode_works_from_the_cache_alone(hub: FakeHub, localchat_home: Path) -> None:
    assert pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M").returncode == 0
    hub.reset_counters()
    result = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M", HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stderr
    assert hub.log == []
    missing = pull(hub, localchat_home, "-q", f"{REPO}:Q8_0", HF_HUB_OFFLINE="1")
    assert_one_clean_error_line(missing, ExitCode.MODEL_NOT_FOUND)
    assert "HF_HUB_OFFLINE" in missing.stderr
    assert hub.log == []


def test_two_pulls_of_the_same_file_take_turns(hub: FakeHub, localchat_home: Path) -> None:
    import os

    hub.set_fault(REPO, FILE, Fault("trickle", bytes_per_s=3_000_000))
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(localchat_home)}
    cmd = [sys.executable, "-m", "localchat", "pull", f"{REPO}:Q4_K_M"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]
    assert hub.bytes_served(FILE) == SIZE  # one download; the other waited on the lock
    assert_cache_clean({FILE: SHA})


def test_pull_stays_on_the_pinned_commit_until_update(hub: FakeHub, localchat_home: Path) -> None:
    first = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
    old_commit = hub.commit_of(REPO)
    new_data = make_gguf_like(SIZE, seed=99)
    hub.push(REPO, {FILE: new_data})  # the repo is re-uploaded
    hub.reset_counters()
    again = pull(hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
    assert again.stdout == first.stdout and old_commit in again.stdout
    assert hub.bytes_served() == 0
    updated = pull(hub, localchat_home, "-q", "--update", f"{REPO}:Q4_K_M")
    assert updated.returncode == 0, updated.stderr
    assert hub.commit_of(REPO) in updated.stdout
    assert sha256_of(Path(updated.stdout.strip())) == hashlib.sha256(new_data).hexdigest()


def test_cdn_redirect_is_followed(monkeypatch: pytest.MonkeyPatch, localchat_home: Path) -> None:
    with FakeHub(cdn_redirect=True) as cdn_hub:
        cdn_hub.add_repo(REPO, {FILE: DATA})
        result = pull(cdn_hub, localchat_home, "-q", f"{REPO}:Q4_K_M")
        assert result.returncode == 0, result.stderr
        assert any("/cdn/" in r.path for r in cdn_hub.requests("GET"))
    assert_cache_clean({FILE: SHA})


def test_awq_repo_pulls_shards_config_and_tokenizer(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
) -> None:
    repo_files = {
        "model-00001-of-00002.safetensors": make_gguf_like(200_000, 3),
        "model-00002-of-00002.safetensors": make_gguf_like(100_000, 4),
        "model.safetensors.index.json": b'{"weight_map": {}}',
        "config.json": b'{"quantization_config": {"quant_method": "awq"}}',
        "quant_config.json": b'{"w_bit": 4}',
        "tokenizer.json": b"{}",
        "tokenizer_config.json": b"{}",
        "README.md": b"# card",
        "figures/plot.png": b"png",
    }
    fake_hub.add_repo("acme/tiny-AWQ", repo_files)
    result = pull(fake_hub, localchat_home, "-q", "acme/tiny-AWQ")
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.is_dir()
    expected = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in repo_files.items()
        if name not in ("README.md", "figures/plot.png")
    }
    assert_cache_clean(expected)


def test_proxy_path_through_httpx2_also_resumes(
    hub: FakeHub, localchat_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a proxy applies, the GET goes through huggingface_hub's httpx2 session."""
    import localchat.hub.http_get as http_get
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref
    from localchat.services import pull_model

    used: list[str] = []
    # Pretend a proxy applies; no proxy is configured, so httpx2 still reaches the loopback hub.
    monkeypatch.setattr(http_get, "_proxy_for", lambda url: used.append(url) or "proxy")
    hub.set_fault(REPO, FILE, Fault("drop", at_byte=700_000, times=1))
    local = pull_model(parse_model_ref(f"{REPO}:Q4_K_M", load_catalog()))
    assert used and sha256_of(local.path) == SHA
    assert hub.bytes_served(FILE) == SIZE
