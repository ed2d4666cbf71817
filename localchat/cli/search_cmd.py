"""``localchat search QUERY``: hub repos matching QUERY, each with its verdict for this machine.

The verdict is the planner's, as ``localchat plan REPO`` makes it: the quant it would
choose, layers on the GPU, context, predicted decode speed and expected quality loss, or
"does not fit: needs X GiB".  The what-if options plan for hardware you don't have.
The table goes to stdout, progress and notes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from localchat import services
from localchat.cli.options import FiniteFloatRange
from localchat.cli.what_if import what_if, what_if_options

if TYPE_CHECKING:
    from localchat.services import SearchHit, SearchOutcome

# the same as services.SEARCH_SORTS (named here so that --help loads no model stack)
SORTS = ("downloads", "likes", "recent", "speed", "quality")
REPO_WIDTH = 40


@click.command("search")
@click.argument("query")
@click.option(
    "--fits-only", is_flag=True, help="Only repos that fit (this machine or the what-if one)."
)
@click.option(
    "--min-tok-s",
    type=FiniteFloatRange(min=0),
    metavar="N",
    help="Only repos predicted to decode at N tok/s or more.",
)
@click.option(
    "--sort",
    type=click.Choice(SORTS),
    default="downloads",
    show_default=True,
    help="Order: the hub's (downloads, likes, recent) or the verdict's (speed, quality).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100),
    default=20,
    show_default=True,
    help="Repos to list and plan.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--timeout",
    "time_budget_s",
    type=FiniteFloatRange(1, 600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Time budget for planning; repos not planned by then say so.",
)
@what_if_options
def search(
    query: str,
    fits_only: bool,
    min_tok_s: float | None,
    sort: str,
    limit: int,
    as_json: bool,
    time_budget_s: float,
    vram: tuple[str, ...],
    ram: str | None,
    apple: str | None,
    cpu_only: bool,
    remote: tuple[str, ...],
    rpc: str | None,
    link: str | None,
) -> None:
    """Search the hub for GGUF and AWQ repos and say how each would run here.

    QUERY is part of a repo name (e.g. llama-3, qwen2.5).  Needs the hub: offline it
    stops with exit 5 (`localchat catalog` lists the models known offline).
    """
    request = services.SearchRequest(
        query, sort, limit, fits_only, min_tok_s, time_budget_s=time_budget_s
    ).checked()
    hardware = services.plan_hardware(what_if(vram, ram, apple, cpu_only, remote, rpc, link))
    plan_request = services.PlanRequest(n_threads=services.settings_threads())
    progress = _Progress(enabled=sys.stderr.isatty())
    click.echo(f"searching the hub for {request.query!r}…", err=True)
    outcome = services.search_models(
        request, hardware, plan_request, on_repos=progress.start, on_hit=progress.step
    )
    progress.done()
    if as_json:
        click.echo(json.dumps(_document(request.query, sort, outcome), indent=2))
    else:
        _print_table(outcome)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)
    if not outcome.found:
        click.echo(f"no GGUF or AWQ repo on the hub matches {request.query!r}", err=True)


class _Progress:
    """``planned 3/20`` on stderr, rewritten in place (only on a terminal)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled, self.total, self.count = enabled, 0, 0

    def start(self, repos: object) -> None:
        self.total = len(repos) if isinstance(repos, list | tuple) else 0
        if self.total:
            click.echo(f"planning {self.total} repos…", err=True)

    def step(self, hit: SearchHit) -> None:
        self.count += 1  # from worker threads: a lost update only shows a lower count
        if self.enabled:
            click.echo(f"\rplanned {self.count}/{self.total}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.count:
            click.echo("\r" + " " * 20 + "\r", err=True, nl=False)


def _document(query: str, sort: str, outcome: SearchOutcome) -> dict[str, object]:
    return {
        "query": query,
        "sort": sort,
        "found": outcome.found,
        "skipped": outcome.skipped,
        "notes": outcome.notes,
        "results": [hit.to_json() for hit in outcome.hits],
    }


def _print_table(outcome: SearchOutcome) -> None:
    if not outcome.hits:
        return
    width = min(REPO_WIDTH, max(len(h.repo.repo_id) for h in outcome.hits))
    click.echo(
        f"{'repo':<{width}}  {'params':>7}  {'arch':<10} {'license':<14} {'downloads':>9}  verdict"
    )
    for hit in outcome.hits:
        repo = hit.repo
        click.echo(
            f"{_cut(repo.repo_id, width):<{width}}  {_params(repo.parameters):>7}  "
            f"{_cut(repo.architecture or '?', 10):<10} {_cut(_license(hit), 14):<14} "
            f"{_count(repo.downloads):>9}  {hit.verdict.summary}"
        )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _license(hit: SearchHit) -> str:
    text = hit.repo.license or "?"
    return f"gated {text}" if hit.repo.gated else text


def _params(count: int | None) -> str:
    if not count:
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def _count(count: int | None) -> str:
    if count is None:
        return "?"
    return _params(count) if count >= 1000 else str(count)
