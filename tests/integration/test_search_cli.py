"""``localchat search`` in a subprocess against the loopback fake hub (issue 20).

A dozen repos of different shapes (``tests/fixtures/hub_search_repos.py``): every
verdict is checked against ``localchat plan`` for the same repo and the same what-if
machine; gated, empty, hostile and oversized answers get their own verdict or one clear
line; filters, sorts and the hub's paging work; a second search reads no header again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localchat.errors import ExitCode
from tests.conftest import unused_port
from tests.fixtures.fakehub import FakeHub, hub_env
from tests.fixtures.hub_search_repos import WHAT_IF, populate
from tests.fixtures.hub_search_repos import search_files as search_files  # fixture
from tests.integration.cli import assert_one_clean_error_line, default_sigint
from tests.integration.test_cli_startup import HEAVY, MODEL_STACK, modules_after

PLANNED = (
    "acme/Llama-8B-Instruct-GGUF",  # dense, two quants: the planner chooses
    "acme/Mixtral-8x7B-Llama-GGUF",  # MoE
    "acme/Llama-70B-GGUF",  # split in 3 parts, in a folder
    "acme/Llama-8B-AWQ",  # AWQ checkpoint
    "acme/Llama-Tiny-GGUF",
    "acme/Llama-3B-IQ-GGUF",  # i-quants: importance-matrix quality rows
    "acme/Llama-1B-GGUF",
)


@pytest.fixture(scope="module")
def search_hub(search_files: dict[str, Any]) -> Iterator[FakeHub]:
    with FakeHub() as hub:
        populate(hub, search_files)
        yield hub


def run(
    hub: FakeHub | None, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LOCALCHAT_HOME": str(home), **(hub_env(hub) if hub else {}), **env}
    return subprocess.run(
        [sys.executable, "-m", "localchat", *args],
        capture_output=True, text=True, env=full_env, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def search_json(hub: FakeHub, home: Path, *args: str) -> dict[str, Any]:
    result = run(hub, home, "search", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def by_repo(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {hit["repo"]: hit for hit in document["results"]}


def test_every_verdict_is_what_plan_says(search_hub: FakeHub, localchat_home: Path) -> None:
    hits = by_repo(search_json(search_hub, localchat_home, "llama", *WHAT_IF))
    for repo in PLANNED:
        verdict = hits[repo]["verdict"]
        result = run(search_hub, localchat_home, "plan", repo, "--json", *WHAT_IF)
        plan = json.loads(result.stdout)
        assert result.returncode == (0 if plan["fits"] else ExitCode.DOES_NOT_FIT), result.stderr
        assert verdict["fits"] == plan["fits"], repo
        assert verdict["status"] == ("fits" if plan["fits"] else "does not fit"), repo
        for key in ("quant", "n_gpu_layers", "n_ctx", "predicted_tok_s"):
            assert verdict[key] == plan[key], (repo, key)
        assert verdict["quality"] == plan["quality"], repo
        assert verdict["plan"]["alternatives"] == plan["alternatives"], repo


def test_the_verdicts_say_what_each_repo_is(search_hub: FakeHub, localchat_home: Path) -> None:
    document = search_json(search_hub, localchat_home, "llama", *WHAT_IF)
    hits = by_repo(document)
    assert "acme/Qwen2-0.5B-GGUF" not in hits  # does not match "llama"
    dense = hits["acme/Llama-8B-Instruct-GGUF"]
    assert (dense["downloads"], dense["license"], dense["parameters"]) == (
        90_000, "llama3.1", 8_030_000_000
    )  # fmt: skip
    assert dense["architecture"] == "llama" and not dense["gated"]
    assert dense["verdict"]["quality"]["ppl_increase_pct"] >= 0
    assert dense["verdict"]["speed_source"] == "modelled"
    big = hits["acme/Llama-70B-GGUF"]["verdict"]
    assert big["status"] == "does not fit" and "needs" in big["summary"]
    assert big["needs_bytes"] > big["budget_bytes"]
    gated = hits["gated/Llama-Gated-GGUF"]
    assert gated["gated"] and gated["verdict"]["status"] == "gated"
    assert (
        "HF_TOKEN" in gated["verdict"]["message"] and "hf auth login" in gated["verdict"]["message"]
    )
    assert hits["acme/Llama-8B-AWQ"]["verdict"]["quant"] == "AWQ"
    assert hits["acme/Llama-notes-GGUF"]["verdict"]["status"] == "nothing to run"
    hostile = hits["evil/Llama-Hostile-GGUF"]["verdict"]
    assert hostile["status"] == "refused" and "unsafe file path" in hostile["message"]
    many = hits["evil/Llama-Many-Files-GGUF"]["verdict"]
    assert many["status"] == "refused" and "100 files" in many["message"]
    # hostile search entries (a ".." id, a 300-character id, a bad sha) are never shown
    assert all(".." not in repo and len(repo) <= 96 for repo in hits)
    assert "evil/bad-sha-GGUF" not in hits
    assert document["skipped"] >= 5


def test_the_many_files_repo_costs_no_header_reads(
    search_hub: FakeHub, localchat_home: Path
) -> None:
    search_hub.reset_counters()
    search_json(search_hub, localchat_home, "Many-Files", *WHAT_IF)
    assert not [r for r in search_hub.requests("GET") if r.file_path], "no part was read"


def test_a_second_search_reads_nothing_but_the_listing(
    search_hub: FakeHub, localchat_home: Path
) -> None:
    search_hub.reset_counters()
    first = search_json(search_hub, localchat_home, "llama", *WHAT_IF)
    per_repo: dict[str, int] = {}
    for request in search_hub.requests("GET"):
        if request.file_path:
            repo = "/".join(request.path.strip("/").split("/")[:2])
            per_repo[repo] = per_repo.get(repo, 0) + request.body_bytes
    assert per_repo and max(per_repo.values()) < 8 << 20, per_repo  # a few MB per repo
    search_hub.reset_counters()
    again = search_json(search_hub, localchat_home, "llama", "--cpu-only")  # another machine
    assert search_hub.bytes_served() == 0
    listed = {r.path.split("/")[4] for r in search_hub.requests() if "/tree/" in r.path}
    assert listed == {"Llama-Hostile-GGUF"}  # refused listings are asked again, not kept
    assert [h["repo"] for h in again["results"]] == [h["repo"] for h in first["results"]]
    cpu = by_repo(again)["acme/Llama-1B-GGUF"]["verdict"]
    assert cpu["fits"] and cpu["n_gpu_layers"] == 0


def test_filters_and_sorts(search_hub: FakeHub, localchat_home: Path) -> None:
    fitting = search_json(search_hub, localchat_home, "llama", "--fits-only", *WHAT_IF)
    assert fitting["results"] and all(h["verdict"]["fits"] for h in fitting["results"])
    assert any("do not pass the filters" in note for note in fitting["notes"])
    fast = search_json(search_hub, localchat_home, "llama", "--min-tok-s", "50", *WHAT_IF)
    assert fast["results"]
    assert all(h["verdict"]["predicted_tok_s"] >= 50 for h in fast["results"])
    speed = search_json(search_hub, localchat_home, "llama", "--sort", "speed", *WHAT_IF)
    tok_s = [h["verdict"]["predicted_tok_s"] for h in speed["results"] if h["verdict"]["fits"]]
    assert tok_s == sorted(tok_s, reverse=True)
    quality = search_json(search_hub, localchat_home, "llama", "--sort", "quality", *WHAT_IF)
    fits = [h["verdict"] for h in quality["results"] if h["verdict"]["fits"]]
    kld = [v["quality"]["kld"] for v in fits if v["quality"]]
    assert kld and kld == sorted(kld)
    assert quality["results"][: len(fits)] == [
        h for h in quality["results"] if h["verdict"]["fits"]
    ]
    likes = search_json(search_hub, localchat_home, "llama", "--sort", "likes", *WHAT_IF)
    assert likes["results"][0]["repo"] == "acme/Llama-1B-GGUF"  # 5000 likes
    recent = search_json(search_hub, localchat_home, "llama", "--sort", "recent", *WHAT_IF)
    dates = [h["last_modified"] for h in recent["results"]]
    assert dates == sorted(dates, reverse=True)


def test_the_hubs_pages_are_followed_to_the_limit(
    search_hub: FakeHub, localchat_home: Path
) -> None:
    search_hub.models_page_size = 2
    search_hub.reset_counters()
    try:
        document = search_json(search_hub, localchat_home, "llama", "--limit", "5", *WHAT_IF)
    finally:
        search_hub.models_page_size = 1000
    assert len(document["results"]) == 5
    downloads = [h["downloads"] for h in document["results"]]
    assert downloads == sorted(downloads, reverse=True)
    pages = [r.path for r in search_hub.requests("GET") if r.path.startswith("/api/models?")]
    assert any("cursor=" in page for page in pages)


def test_the_table_has_every_column(search_hub: FakeHub, localchat_home: Path) -> None:
    result = run(search_hub, localchat_home, "search", "llama", *WHAT_IF)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    for column in ("repo", "params", "arch", "license", "downloads", "verdict"):
        assert column in header
    dense = next(row for row in rows if row.startswith("acme/Llama-8B-Instruct-GGUF"))
    assert "8.0B" in dense and "llama3.1" in dense and "90.0k" in dense and "tok/s" in dense
    gated = next(row for row in rows if row.startswith("gated/"))
    assert "gated llama3.2" in gated and "hf auth login" in gated
    assert "searching the hub" in result.stderr and "Traceback" not in result.stderr


def test_offline_and_unreachable_are_one_line_and_the_catalog_still_works(
    search_hub: FakeHub, localchat_home: Path
) -> None:
    offline = run(search_hub, localchat_home, "search", "llama", HF_HUB_OFFLINE="1")
    assert offline.returncode == ExitCode.DOWNLOAD_FAILED
    assert offline.stderr.strip().splitlines()[-1].startswith("localchat: error: HF_HUB_OFFLINE")
    dead = run(
        None, localchat_home, "search", "llama", HF_ENDPOINT=f"http://127.0.0.1:{unused_port()}"
    )
    assert dead.returncode == ExitCode.DOWNLOAD_FAILED, dead.stderr
    last = dead.stderr.strip().splitlines()[-1]
    assert last.startswith("localchat: error: searching the hub: cannot reach"), last
    assert "Traceback" not in dead.stderr and dead.stdout == ""
    catalog = run(None, localchat_home, "catalog", HF_HUB_OFFLINE="1")
    assert catalog.returncode == 0 and "gemma-3-270m" in catalog.stdout


def test_a_huge_answer_is_refused(search_hub: FakeHub, localchat_home: Path) -> None:
    search_hub.search_padding_bytes = 9 << 20
    try:
        result = run(search_hub, localchat_home, "search", "llama")
    finally:
        search_hub.search_padding_bytes = 0
    assert result.returncode == ExitCode.DOWNLOAD_FAILED
    last = result.stderr.strip().splitlines()[-1]
    assert "larger than 8 MB; refused" in last and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("x" * 101,), ("llama", "--sort", "size"), ("llama", "--limit", "0"), ("llama\x07",)],
)
def test_bad_input_is_a_usage_error(localchat_home: Path, args: tuple[str, ...]) -> None:
    result = run(None, localchat_home, "search", *args)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "Traceback" not in result.stderr


def test_a_query_over_the_limit_is_one_line(localchat_home: Path) -> None:
    result = run(None, localchat_home, "search", "x" * 101)
    assert "localchat: error: the search text must be at most 100" in result.stderr
    assert_one_clean_error_line(result, ExitCode.USAGE)


def test_the_time_budget_bounds_a_slow_hub(search_hub: FakeHub, localchat_home: Path) -> None:
    search_hub.latency_s = 0.3
    started = time.monotonic()
    try:
        document = search_json(search_hub, localchat_home, "llama", "--timeout", "1", "--cpu-only")
    finally:
        search_hub.latency_s = 0.0
    statuses = {h["verdict"]["status"] for h in document["results"]}
    assert "timed out" in statuses, statuses
    assert time.monotonic() - started < 60  # it returns; it does not wait for the hub


def test_search_help_loads_nothing_heavy() -> None:
    loaded = modules_after(["search", "--help"])
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert not [m for m in loaded if m.startswith(MODEL_STACK)]


def test_ctrl_c_stops_at_once(search_hub: FakeHub, localchat_home: Path) -> None:
    search_hub.latency_s = 0.5  # planning would take many seconds
    env = {**os.environ, **hub_env(search_hub), "LOCALCHAT_HOME": str(localchat_home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "localchat", "search", "llama", "--cpu-only"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL, preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        assert child.stderr is not None
        while "planning" not in child.stderr.readline():
            assert child.poll() is None, "the search ended before it planned"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=15)
    finally:
        search_hub.latency_s = 0.0
        if child.poll() is None:
            child.kill()
    assert child.returncode == ExitCode.INTERRUPTED
    assert "Traceback" not in err
