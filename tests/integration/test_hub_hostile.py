"""A hostile hub cannot write outside the model cache (issue 9, item 1).

The loopback fake hub answers with commit shas and file paths chosen to escape the
HF cache (``../../..``, absolute paths, backslashes).  Before, ``pull`` created
folders and symlinks outside the cache and replaced a file there with a symlink;
now it refuses with exit 5 and one line, and nothing appears outside the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import DownloadFailed, ExitCode
from localchat.hub.layout import RepoCache
from localchat.hub.names import check_commit, check_etag, check_repo_path
from localchat.paths import hf_cache_dir
from tests.fixtures.fakehub import (
    FakeHub,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
    make_gguf_like,
)

REPO = "acme/tiny-GGUF"
GOOD_FILE = "tiny-Q4_K_M.gguf"


def pull(hub: FakeHub, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "localchat", "pull", *args],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Exit 5; the last stderr line is the one error (after "resolving ..."), no traceback."""
    assert result.returncode == ExitCode.DOWNLOAD_FAILED, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("localchat: error: the hub sent an unsafe") and what in last, last


def everything_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} | {p for p in root.rglob(".*")}


def test_a_hostile_commit_sha_is_refused(fake_hub: FakeHub, localchat_home: Path) -> None:  # noqa: F811
    fake_hub.add_repo(REPO, {GOOD_FILE: make_gguf_like(200_000, 1)})
    repo = fake_hub.repos[REPO]
    for hostile in ("../../../../escaped/x", "/tmp/escaped-abs", "a" * 39 + "/"):
        commit = repo.refs["main"]
        repo.commits[hostile] = repo.commits[commit]
        repo.refs["main"] = hostile
        before = everything_under(localchat_home)
        result = pull(fake_hub, localchat_home, f"{REPO}:Q4_K_M")
        assert_refused(result, "commit id")
        created = everything_under(localchat_home) - before
        assert not [p for p in created if "escaped" in str(p)], created
    assert not Path("/tmp/escaped-abs").exists()


@pytest.mark.parametrize(
    "hostile_path",
    [
        "../../../../escaped-Q4_K_M.gguf",
        "sub/../../../escaped-Q4_K_M.gguf",
        "/tmp/escaped-abs-Q4_K_M.gguf",
        "..\\..\\escaped-Q4_K_M.gguf",
        "./escaped-Q4_K_M.gguf",
        "a//escaped-Q4_K_M.gguf",
    ],
)
def test_hostile_file_paths_are_refused(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
    tmp_path: Path,
    hostile_path: str,
) -> None:
    victim = localchat_home / "escaped-Q4_K_M.gguf"
    victim.write_bytes(b"the user's own file")
    fake_hub.add_repo(REPO, {hostile_path: make_gguf_like(200_000, 2)})
    result = pull(fake_hub, localchat_home, f"{REPO}:Q4_K_M")
    assert_refused(result, "file path")
    assert not victim.is_symlink() and victim.read_bytes() == b"the user's own file"
    assert not Path("/tmp/escaped-abs-Q4_K_M.gguf").exists()
    assert not list(localchat_home.rglob("*escaped*"))[1:]  # only the victim itself


def test_a_good_pull_still_works(fake_hub: FakeHub, localchat_home: Path) -> None:  # noqa: F811
    fake_hub.add_repo(REPO, {f"sub/{GOOD_FILE}": make_gguf_like(300_000, 3)})
    result = pull(fake_hub, localchat_home, f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    (pointer,) = hf_cache_dir().glob("models--acme--tiny-GGUF/snapshots/*/sub/*.gguf")
    assert pointer.is_symlink() and pointer.stat().st_size == 300_000


def test_names_from_the_network_are_checked() -> None:
    assert check_commit("0123456789abcdef0123456789abcdef01234567")
    assert check_etag("a" * 64) and check_etag("b" * 40)
    assert check_repo_path("Model-Q8_0/Model-Q8_0-00001-of-00002.gguf")
    for commit in ("../x", "A" * 40, "a" * 41, "", None, "a" * 39 + "\0"):
        with pytest.raises(DownloadFailed):
            check_commit(commit)
    for etag in ("../../blobs/x", "a" * 63, "g" * 40):
        with pytest.raises(DownloadFailed):
            check_etag(etag)
    for path in ("..", "a/../b", "/etc/x", "a\\b", "", "a/", "C:/x", "a\nb", "x" * 2000):
        with pytest.raises(DownloadFailed):
            check_repo_path(path)


def test_link_never_removes_what_it_did_not_create(tmp_path: Path) -> None:
    cache = RepoCache(REPO, tmp_path / "hub")
    commit, etag = "c" * 40, "e" * 64
    cache.blob(etag).parent.mkdir(parents=True)
    cache.blob(etag).write_bytes(b"model")
    users_file = cache.pointer(commit, "x.gguf")
    users_file.parent.mkdir(parents=True)
    users_file.write_bytes(b"another tool's file")
    with pytest.raises(DownloadFailed, match="in the way"):
        cache.link(etag, commit, "x.gguf")
    assert users_file.read_bytes() == b"another tool's file"

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "y.gguf").write_bytes(b"precious")
    (cache.snapshot_dir(commit) / "sub").symlink_to(outside)
    with pytest.raises(DownloadFailed, match="outside the model cache"):
        cache.link(etag, commit, "sub/y.gguf")
    assert (outside / "y.gguf").read_bytes() == b"precious"

    stale = cache.pointer(commit, "z.gguf")
    stale.symlink_to("../../blobs/" + "0" * 64)  # a dangling pointer of ours: replaced
    assert cache.link(etag, commit, "z.gguf").read_bytes() == b"model"


# ------------------------------------------------ item 7: documented codes, one line


def last_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_disk_full_during_a_pull(fake_hub: FakeHub, localchat_home: Path) -> None:  # noqa: F811
    """A real ENOSPC: the partial download is a symlink to /dev/full."""
    data = make_gguf_like(200_000, 4)
    fake_hub.add_repo(REPO, {GOOD_FILE: data})
    etag = fake_hub.file(REPO, GOOD_FILE).etag
    partial = RepoCache(REPO, hf_cache_dir()).partial(etag)
    partial.parent.mkdir(parents=True)
    partial.symlink_to("/dev/full")
    result = pull(fake_hub, localchat_home, f"{REPO}:Q4_K_M")
    assert result.returncode == ExitCode.DOWNLOAD_FAILED, result.stderr
    assert "is full" in last_error_line(result) and "HF_HUB_CACHE" in result.stderr


def test_a_cache_that_is_not_a_folder(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
    tmp_path: Path,
) -> None:
    fake_hub.add_repo(REPO, {GOOD_FILE: make_gguf_like(200_000, 5)})
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("I am a file")
    env = {**os.environ, **hub_env(fake_hub), "LOCALCHAT_HOME": str(localchat_home),
           "HF_HUB_CACHE": str(not_a_folder)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "pull", f"{REPO}:Q4_K_M"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == ExitCode.DOWNLOAD_FAILED, result.stderr
    line = last_error_line(result)
    assert "cannot write the model cache" in line and "HF_HUB_CACHE" in line
    assert not_a_folder.read_text() == "I am a file"


@pytest.mark.parametrize("repo", ["owner/..", "o/" + "r" * 300, "hf.co/a--b/c", "a/.x."])
def test_invalid_repo_ids(repo: str, localchat_home: Path) -> None:
    env = {**os.environ, "LOCALCHAT_HOME": str(localchat_home), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "pull", repo],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == ExitCode.MODEL_NOT_FOUND, result.stderr
    assert "not a hub reference" in last_error_line(result)
    assert len(result.stderr) < 300
