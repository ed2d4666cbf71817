"""Hub search below the CLI: what the hub's entries may hold, the bounded worker pool,
the per-repo cache, cancelling — against the loopback fake hub, in process."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi

from localchat.errors import ConfigError, DownloadFailed
from localchat.hub import pages as hub_pages
from localchat.hub.search import check_repo_id, parse_entry, search_repos
from localchat.services import PlanRequest, SearchRequest, plan_hardware, search_models
from localchat.services.plan import WhatIf
from localchat.services.search import run_bounded
from localchat.services.search_cache import RepoFacts, cache_dir, load_facts, save_facts
from localchat.services.search_facts import error_kind, plan_repo
from localchat.services.search_verdict import Verdict
from tests.fixtures.fakehub import FakeHub
from tests.fixtures.fakehub import fake_hub as fake_hub  # fixture
from tests.fixtures.hub_search_repos import populate
from tests.fixtures.hub_search_repos import search_files as search_files  # fixture

SHA = "0123456789abcdef0123456789abcdef01234567"


def entry(**fields: Any) -> dict[str, Any]:
    return {"id": "acme/Model-GGUF", "sha": SHA, **fields}


@pytest.mark.parametrize(
    "repo_id",
    ["evil/..", "../etc/passwd", "evil/a--b", "a" * 97 + "/b", "evil", "evil/x/y", "-x/y",
     "x/y.", "evil/na me", "evil/\u202eGGUF", 42, None, "evil/x\n"],
)  # fmt: skip
def test_unsafe_repo_ids_are_refused(repo_id: object) -> None:
    assert check_repo_id(repo_id) is None
    assert parse_entry(entry(id=repo_id)) is None


def test_a_good_entry_keeps_its_fields() -> None:
    repo = parse_entry(
        entry(
            downloads=1200, likes=7, gated="manual", lastModified="2026-01-02T03:04:05.000Z",
            tags=["gguf", "license:apache-2.0"], library_name="transformers",
            gguf={"total": 8_030_000_000, "architecture": "llama"},
        ),
    )  # fmt: skip
    assert repo is not None
    assert (repo.repo_id, repo.commit, repo.downloads, repo.likes) == (
        "acme/Model-GGUF", SHA, 1200, 7
    )  # fmt: skip
    assert (repo.gated, repo.license, repo.architecture, repo.parameters) == (
        True, "apache-2.0", "llama", 8_030_000_000
    )  # fmt: skip
    assert repo.last_modified.startswith("2026-01-02")


def test_hostile_fields_are_blanked_not_trusted() -> None:
    repo = parse_entry(
        entry(
            downloads=-5, likes="lots", lastModified="yesterday; rm -rf /",
            tags=["license:" + "x" * 500, *["t"] * 100_000], gguf="not a dict",
            library_name="\x1b[31mred\x1b[0m" + "y" * 500, safetensors={"total": 2**60},
        ),
    )  # fmt: skip
    assert repo is not None
    assert repo.downloads is None and repo.likes is None and repo.parameters is None
    assert repo.last_modified == "" and repo.architecture == ""
    assert len(repo.license) <= 40 and "\x1b" not in repo.library and len(repo.library) <= 40


@pytest.mark.parametrize("sha", ["../../x", "abc", 12, "G" * 40])
def test_a_bad_commit_drops_the_entry(sha: object) -> None:
    assert parse_entry(entry(sha=sha)) is None


def test_a_disabled_repo_is_not_listed() -> None:
    assert parse_entry(entry(disabled=True)) is None


def test_nesting_and_non_lists_are_refused() -> None:
    with pytest.raises(DownloadFailed, match="not valid JSON"):
        hub_pages._json_array(b"[" * 100_000 + b"]" * 100_000, "searching")
    with pytest.raises(DownloadFailed, match="not a list"):
        hub_pages._json_array(b'{"id": "x"}', "searching")


def test_pages_are_followed_on_the_hub_only(fake_hub: FakeHub) -> None:
    for i in range(7):
        fake_hub.add_repo(f"acme/m{i}-GGUF", {"README.md": b"x"}, meta={"downloads": i})
    fake_hub.models_page_size = 3
    page = search_repos("m", tag="gguf", limit=5)
    assert [r.repo_id for r in page.repos] == [f"acme/m{i}-GGUF" for i in (6, 5, 4, 3, 2)]
    asked = [r.path for r in fake_hub.requests("GET") if r.path.startswith("/api/models?")]
    assert len(asked) == 2 and "cursor=3" in asked[1]
    assert not hub_pages.same_origin("http://evil.example/api/models?cursor=3")


def test_a_bad_sort_or_query_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SearchRequest("llama", sort="size").checked()
    with pytest.raises(ConfigError):
        SearchRequest("llama\x00").checked()


def verdict(name: str) -> Verdict:
    return Verdict("failed", message=name)


def test_run_bounded_runs_every_job_and_respects_the_worker_count() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def job(i: int) -> Verdict:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return verdict(str(i))

    jobs = [lambda i=i: job(i) for i in range(12)]
    results = run_bounded(jobs, workers=3, deadline=time.monotonic() + 30, cancel=threading.Event())
    assert sorted(results) == list(range(12)) and peak[0] == 3
    serial = run_bounded(
        jobs[:4], workers=1, deadline=time.monotonic() + 30, cancel=threading.Event()
    )
    assert [v.message for v in serial.values()] == ["0", "1", "2", "3"]


def test_run_bounded_returns_at_the_deadline_and_on_cancel() -> None:
    release = threading.Event()

    def stuck() -> Verdict:
        release.wait(30)
        return verdict("late")

    started = time.monotonic()
    results = run_bounded(
        [stuck] * 4, workers=2, deadline=time.monotonic() + 0.3, cancel=threading.Event()
    )
    assert results == {} and time.monotonic() - started < 5
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    results = run_bounded([stuck] * 4, workers=2, deadline=time.monotonic() + 30, cancel=cancel)
    assert results == {} and time.monotonic() - started < 5
    release.set()


def test_cancelling_from_the_first_callback_plans_nothing(
    fake_hub: FakeHub,
    search_files: dict[str, Any],
) -> None:
    populate(fake_hub, search_files)
    cancel = threading.Event()
    fake_hub.reset_counters()
    outcome = search_models(
        SearchRequest("llama"),
        plan_hardware(WhatIf(cpu_only=True)),
        cancel=cancel,
        on_repos=lambda repos: cancel.set(),
    )
    assert outcome.hits and {h.verdict.status for h in outcome.hits} == {"cancelled"}
    assert not [r for r in fake_hub.requests() if "/tree/" in r.path or r.file_path]


def test_the_cache_round_trips_and_ignores_a_broken_file(
    fake_hub: FakeHub,
    search_files: dict[str, Any],
) -> None:
    populate(fake_hub, search_files)
    hardware = plan_hardware(WhatIf(vram=("8GiB",), ram="16GiB"))
    repo = "acme/Llama-8B-Instruct-GGUF"
    commit = fake_hub.commit_of(repo)
    first = plan_repo(repo, commit, hardware, PlanRequest())
    facts = load_facts(repo, commit)
    assert facts is not None and facts.quants and set(facts.infos) == {"Q4_K_M", "Q8_0"}
    assert load_facts(repo, "f" * 40) is None  # another commit: not this one's facts
    fake_hub.reset_counters()
    again = plan_repo(repo, commit, hardware, PlanRequest())
    assert fake_hub.requests() == []
    assert again.to_json() == first.to_json()
    path = next(cache_dir().glob("*.json"))
    for broken in ("{", json.dumps({"version": 1, "commit": commit, "quants": {"Q8_0": 3}})):
        path.write_text(broken)
        assert load_facts(repo, commit) is None
    save_facts(repo, commit, RepoFacts(nothing="nothing here"))
    assert load_facts(repo, commit) == RepoFacts(nothing="nothing here")


def test_cache_files_are_named_by_repo_inside_the_cache(tmp_path: Path) -> None:
    save_facts("acme/x.y-GGUF", SHA, RepoFacts(nothing="n"))
    assert (cache_dir() / "acme--x.y-GGUF.json").is_file()


def test_a_hostile_file_size_is_refused(fake_hub: FakeHub, search_files: dict[str, Any]) -> None:
    repo = "evil/Size-GGUF"
    tiny = search_files["tiny-Q8_0"]
    fake_hub.add_repo(repo, {"x-Q8_0.gguf": tiny}, declared_sizes={"x-Q8_0.gguf": 1 << 60})
    hardware = plan_hardware(WhatIf(cpu_only=True))
    with pytest.raises(DownloadFailed, match="unsafe file size") as caught:
        plan_repo(repo, fake_hub.commit_of(repo), hardware, PlanRequest())
    assert error_kind(caught.value) == "refused"


def test_the_fake_hub_answers_list_models_as_huggingface_hub_expects(
    fake_hub: FakeHub, search_files: dict[str, Any]
) -> None:
    """The fake's /api/models against huggingface_hub's own client: filter, sort, limit,
    expand, full, and paging by Link header."""
    populate(fake_hub, search_files)
    fake_hub.search_extra = []
    fake_hub.models_page_size = 2
    api = HfApi(endpoint=fake_hub.url)
    found = list(api.list_models(search="llama", filter="gguf", sort="downloads", limit=5))
    assert [m.id for m in found][:2] == [
        "acme/Llama-8B-Instruct-GGUF",
        "acme/Mixtral-8x7B-Llama-GGUF",
    ]
    assert len(found) == 5 and all("gguf" in (m.tags or []) for m in found)
    awq = list(api.list_models(search="llama", filter="awq", expand=["sha", "safetensors"]))
    assert [m.id for m in awq] == ["acme/Llama-8B-AWQ"] and awq[0].sha and awq[0].safetensors
    assert awq[0].downloads is None  # not asked for
    full = list(api.list_models(search="Tiny", full=True))
    assert full[0].siblings and {s.rfilename for s in full[0].siblings} == {
        "Llama-Tiny-Q8_0.gguf", "Llama-Tiny-Q4_K_M.gguf"
    }  # fmt: skip
    liked = list(api.list_models(search="llama", sort="likes", limit=1))
    assert liked[0].id == "acme/Llama-1B-GGUF"
