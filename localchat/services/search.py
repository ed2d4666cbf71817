"""Hub search with a verdict for this machine: which repos run here, how fast, how well.

    hits = search_models(SearchRequest("llama"), hardware).hits
    hits[0].repo.downloads, hits[0].verdict.summary   # "Q4_K_M · all on GPU · ... tok/s"

The hub is asked once per registered model format (its name is the hub's tag: ``gguf``,
``awq``); the answers are merged in the hub's order and cut to ``limit``.  Each repo then
gets the planner's plan, exactly as ``localchat plan REPO`` makes it
(``search_facts.plan_repo``), several repos at once on daemon threads, within a time
budget, stoppable at any moment (``cancel``): a repo not planned by then says so, and
nothing left running holds the caller up.  Speed and quality sorts and the ``fits_only`` /
``min_tok_s`` filters apply to the verdicts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from localchat.engine.registry import model_formats
from localchat.errorlog import one_line, write_traceback
from localchat.errors import ConfigError, LocalchatError
from localchat.hardware import Hardware
from localchat.hub.search import HubRepo, check_query, search_repos
from localchat.planner import Plan, PlanRequest
from localchat.services.search_facts import error_kind, plan_repo
from localchat.services.search_verdict import Verdict, verdict_from_error, verdict_from_plan

__all__ = [
    "SEARCH_SORTS",
    "HubRepo",
    "SearchHit",
    "SearchOutcome",
    "SearchRequest",
    "Verdict",
    "quant_options",
    "search_models",
]

SEARCH_SORTS = ("downloads", "likes", "recent", "speed", "quality")
HUB_SORT_OF = {"speed": "downloads", "quality": "downloads"}  # verdict sorts start from these
DEFAULT_WORKERS = 8
MAX_LIMIT = 100


@dataclass(frozen=True)
class SearchRequest:
    query: str
    sort: str = "downloads"  # one of SEARCH_SORTS
    limit: int = 20
    fits_only: bool = False
    min_tok_s: float | None = None
    time_budget_s: float = 60.0
    workers: int = DEFAULT_WORKERS  # repos planned at once (1: one after another)

    def checked(self) -> SearchRequest:
        if self.sort not in SEARCH_SORTS:
            sorts = ", ".join(SEARCH_SORTS)
            raise ConfigError(f"unknown sort {self.sort!r}", hint=f"one of {sorts}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ConfigError(f"--limit must be 1 to {MAX_LIMIT}")
        if self.time_budget_s <= 0 or self.workers < 1:
            raise ConfigError("the time budget and the worker count must be positive")
        return replace(self, query=check_query(self.query))


@dataclass(frozen=True)
class SearchHit:
    repo: HubRepo
    verdict: Verdict

    @property
    def pull_key(self) -> str | None:
        """``owner/repo:QUANT`` for the planner's quant; None when nothing was planned."""
        quant = self.verdict.quant
        return f"{self.repo.repo_id}:{quant}" if quant and self.verdict.plan else None

    def to_json(self) -> dict[str, Any]:
        return {**self.repo.to_json(), "verdict": self.verdict.to_json()}


@dataclass
class SearchOutcome:
    hits: list[SearchHit]
    found: int  # repos the hub listed (before the filters)
    skipped: int  # entries the hub sent that failed the checks
    notes: list[str] = field(default_factory=list)


OnRepos = Callable[[Sequence[HubRepo]], object]
OnHit = Callable[[SearchHit], object]


def search_models(
    request: SearchRequest,
    hardware: Hardware,
    plan_request: PlanRequest | None = None,
    *,
    cancel: threading.Event | None = None,
    on_repos: OnRepos | None = None,
    on_hit: OnHit | None = None,
) -> SearchOutcome:
    """Search the hub and plan each repo found for ``hardware``.

    ``on_repos`` gets the repos as soon as the hub listed them, ``on_hit`` each verdict as
    it is reached (from a worker thread).  Hub failures of the search itself raise
    (``DownloadFailed``); a repo's own failure is its verdict.
    """
    request = request.checked()
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + request.time_budget_s
    repos, skipped = _find_repos(request)
    if on_repos is not None:
        on_repos(repos)
    plan_request = plan_request or PlanRequest()

    def report(index: int, verdict: Verdict) -> None:
        if on_hit is not None:
            on_hit(SearchHit(repos[index], verdict))

    verdicts = run_bounded(
        [partial(_verdict, repo, hardware, plan_request) for repo in repos],
        workers=request.workers,
        deadline=deadline,
        cancel=cancel,
        on_done=report,
    )
    hits = [
        SearchHit(repo, verdicts.get(i) or _unplanned(cancel, request.time_budget_s))
        for i, repo in enumerate(repos)
    ]
    return _outcome(request, hits, skipped)


def _find_repos(request: SearchRequest) -> tuple[list[HubRepo], int]:
    """Each format's repos from the hub (asked at once), merged in the requested order,
    cut to ``limit``."""
    sort = HUB_SORT_OF.get(request.sort, request.sort)
    tags = [fmt.name for fmt in model_formats()]
    with ThreadPoolExecutor(max_workers=max(1, len(tags))) as pool:
        pages = list(
            pool.map(
                lambda tag: search_repos(request.query, tag=tag, sort=sort, limit=request.limit),
                tags,
            )
        )
    merged: dict[str, HubRepo] = {}
    for page in pages:
        for repo in page.repos:
            merged.setdefault(repo.repo_id, repo)
    ordered = sorted(merged.values(), key=_hub_key(sort), reverse=True)  # stable
    return ordered[: request.limit], sum(page.skipped for page in pages)


def _hub_key(sort: str) -> Callable[[HubRepo], Any]:
    if sort == "likes":
        return lambda repo: repo.likes if repo.likes is not None else -1
    if sort == "recent":
        return lambda repo: repo.last_modified
    return lambda repo: repo.downloads if repo.downloads is not None else -1


def _verdict(repo: HubRepo, hardware: Hardware, plan_request: PlanRequest) -> Verdict:
    try:
        plan = plan_repo(repo.repo_id, repo.commit, hardware, plan_request)
    except LocalchatError as exc:
        return verdict_from_error(error_kind(exc), exc, repo.repo_id)
    except Exception as exc:  # a bug: this repo's verdict says so; the others go on
        where = write_traceback(exc, context=f"planning {repo.repo_id} for hub search")
        return Verdict("failed", message=f"{one_line(exc)} (details in {where or 'no log'})")
    return verdict_from_plan(plan)


def _unplanned(cancel: threading.Event, budget_s: float) -> Verdict:
    if cancel.is_set():
        return Verdict("cancelled", message="the search was cancelled")
    return Verdict("timed out", message=f"not planned within the time budget ({budget_s:g} s)")


def _outcome(request: SearchRequest, hits: list[SearchHit], skipped: int) -> SearchOutcome:
    found = len(hits)
    if request.sort == "speed":
        hits.sort(key=lambda h: (not h.verdict.fits, -(h.verdict.tok_s or 0.0)))
    elif request.sort == "quality":
        hits.sort(key=_quality_key)
    if request.fits_only:
        hits = [h for h in hits if h.verdict.fits]
    if request.min_tok_s is not None:
        floor = request.min_tok_s
        hits = [h for h in hits if h.verdict.fits and (h.verdict.tok_s or 0.0) >= floor]
    notes = []
    if skipped:
        notes.append(f"skipped {skipped} entries the hub sent that failed the checks")
    if len(hits) < found:
        notes.append(f"{len(hits)} of {found} repos shown (the others do not pass the filters)")
    return SearchOutcome(hits, found, skipped, notes)


def _quality_key(hit: SearchHit) -> tuple[bool, float, float]:
    verdict = hit.verdict
    kld = verdict.kld if verdict.kld is not None else float("inf")
    return (not verdict.fits, kld, -(verdict.tok_s or 0.0))


def run_bounded(
    jobs: Sequence[Callable[[], Verdict]],
    *,
    workers: int,
    deadline: float,
    cancel: threading.Event,
    on_done: Callable[[int, Verdict], None] | None = None,
) -> dict[int, Verdict]:
    """Run ``jobs`` on up to ``workers`` daemon threads until all are done, ``deadline``
    (``time.monotonic``) passes or ``cancel`` is set; return what finished by then.

    A job is started only before the deadline and while not cancelled; one still running
    afterwards finishes on its daemon thread and its result is dropped, so neither the
    caller nor the process exit waits for a slow hub.
    """
    results: dict[int, Verdict] = {}
    state = threading.Condition()
    next_job = [0]
    closed = [False]

    def take() -> int | None:
        with state:
            stop = closed[0] or cancel.is_set() or time.monotonic() >= deadline
            if stop or next_job[0] >= len(jobs):
                return None
            next_job[0] += 1
            return next_job[0] - 1

    def work() -> None:
        while (index := take()) is not None:
            verdict = jobs[index]()
            with state:
                if closed[0]:
                    return
                results[index] = verdict
                state.notify_all()
            if on_done is not None:
                on_done(index, verdict)

    for n in range(max(1, min(workers, len(jobs)))):
        threading.Thread(target=work, name=f"hub-search-{n}", daemon=True).start()
    with state:
        while len(results) < len(jobs) and not cancel.is_set():
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                break
            state.wait(min(left_s, 0.1))  # wakes for cancel too
        closed[0] = True
        return dict(results)


def quant_options(plan: Plan) -> list[dict[str, Any]]:
    """Every quant the planner weighed for a verdict, best quality first (the chosen one
    marked ``chosen``): for the app's per-quant view."""
    return plan.quant_rows()
