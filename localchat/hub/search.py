"""Search the hub for model repos: the query ``HfApi.list_models`` sends, read with bounds.

The request is the one ``list_models`` makes (``search``, ``filter``, ``sort``, ``limit``,
``expand``), through huggingface_hub's session with its headers and the user's token, and
pages follow the hub's ``Link: <...>; rel="next"`` header as huggingface_hub's ``paginate``
does.  It is not sent through ``list_models`` itself because that reads every answer whole
(``response.json()``): here a page is read to at most ``MAX_PAGE_BYTES``, at most
``MAX_PAGES`` pages are followed and only on the configured endpoint, and every entry is
checked (repo id, commit, numbers, strings) before use; entries that fail are skipped and
counted, never shown and never planned.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from localchat.errors import AuthRequired, ConfigError, DownloadFailed
from localchat.hub.client import LOGIN_HINT, hub_endpoint, is_offline, status_error
from localchat.hub.names import check_commit
from localchat.hub.pages import JsonListing

MAX_PAGES = 10
MAX_PAGE_ENTRIES = 1000  # entries looked at per page (the hub's own page size)
MAX_LIMIT = 100
MAX_QUERY_CHARS = 100
MAX_TAGS = 200  # tags looked at per repo
MAX_TEXT_CHARS = 40  # architecture, license, library as shown
TIMEOUT_S = 15.0
# How each sort is spelled on the wire (``list_models`` maps "last_modified" so).
HUB_SORTS = {"downloads": "downloads", "likes": "likes", "recent": "lastModified"}
EXPAND = (
    "sha", "downloads", "likes", "lastModified", "gated", "private", "disabled", "tags",
    "library_name", "gguf", "safetensors", "config",
)  # fmt: skip
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9_.\-]{1,96}")
MAX_REPO_ID_CHARS = 96


@dataclass(frozen=True)
class HubRepo:
    """One search result, every field checked; numbers the hub did not send are None."""

    repo_id: str
    commit: str | None  # the commit ``main`` points to (None: the hub did not say)
    downloads: int | None  # last 30 days
    likes: int | None
    last_modified: str  # ISO 8601 as the hub sent it ("" when absent)
    gated: bool
    license: str
    architecture: str
    parameters: int | None
    library: str

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo_id,
            "commit": self.commit,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified or None,
            "gated": self.gated,
            "license": self.license or None,
            "architecture": self.architecture or None,
            "parameters": self.parameters,
            "library": self.library or None,
        }


@dataclass(frozen=True)
class SearchPage:
    repos: tuple[HubRepo, ...]
    skipped: int  # entries the hub sent that failed the checks


def check_query(text: str) -> str:
    """The search text: at most ``MAX_QUERY_CHARS`` printable characters."""
    cleaned = text.strip()
    if len(cleaned) > MAX_QUERY_CHARS or any(_is_control(c) for c in cleaned):
        raise ConfigError(
            "the search text must be at most 100 printable characters",
            hint="search for part of a repo name, e.g. llama-3 or qwen2.5",
        )
    return cleaned


def search_repos(
    text: str, *, tag: str, sort: str = "downloads", limit: int = 20, timeout_s: float = TIMEOUT_S
) -> SearchPage:
    """Repos whose id contains ``text`` and that carry the hub tag ``tag`` (a model
    format's name: ``gguf``), most downloaded (liked, recent) first, at most ``limit``."""
    if is_offline():
        raise DownloadFailed(
            "HF_HUB_OFFLINE=1 is set: searching needs the hub",
            hint="unset it to search; `localchat catalog` lists the models known offline",
        )
    limit = max(1, min(limit, MAX_LIMIT))
    params: dict[str, Any] = {
        "search": check_query(text),
        "filter": tag,
        "sort": HUB_SORTS.get(sort, "downloads"),
        "limit": limit,
        "expand": list(EXPAND),
    }
    repos: list[HubRepo] = []
    skipped = 0
    for page in _pages(params, timeout_s):
        for entry in page[:MAX_PAGE_ENTRIES]:
            repo = parse_entry(entry)
            if repo is None:
                skipped += 1
            elif all(r.repo_id != repo.repo_id for r in repos):
                repos.append(repo)
            if len(repos) >= limit:
                return SearchPage(tuple(repos), skipped)
    return SearchPage(tuple(repos), skipped)


def _pages(params: dict[str, Any], timeout_s: float) -> Iterator[list[Any]]:
    """The hub's pages of repos (``MAX_PAGES`` at most); the caller stops asking once it
    has enough."""
    what = "searching the hub"
    listing = JsonListing(
        what,
        check_status=lambda status: _check_status(status, what),
        hint="check the network; `localchat catalog` works offline",
        timeout_s=timeout_s,
    )
    yield from listing.pages(f"{hub_endpoint()}/api/models", params, MAX_PAGES)


def _check_status(status: int, what: str) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise AuthRequired(f"{what}: the hub refused the request (HTTP {status})", hint=LOGIN_HINT)
    if status == 404:
        raise DownloadFailed(f"{what}: {hub_endpoint()} does not offer search (HTTP 404)")
    error = status_error(status, what)
    raise error if isinstance(error, DownloadFailed) else DownloadFailed(error.message)


# ---------------------------------------------------------------------- one entry


def parse_entry(entry: Any) -> HubRepo | None:
    """A search entry as a ``HubRepo``; None when its id or commit is unsafe or the repo
    is disabled or private (it could not be pulled)."""
    if not isinstance(entry, dict):
        return None
    repo_id = check_repo_id(entry.get("id"))
    sha = entry.get("sha")
    commit = _commit(sha) if sha is not None else None
    if repo_id is None or (sha is not None and commit is None) or entry.get("disabled") is True:
        return None
    tags = _tags(entry.get("tags"))
    gguf, config = _mapping(entry.get("gguf")), _mapping(entry.get("config"))
    return HubRepo(
        repo_id=repo_id,
        commit=commit,
        downloads=count(entry.get("downloads")),
        likes=count(entry.get("likes")),
        last_modified=_date(entry.get("lastModified")),
        gated=entry.get("gated") not in (None, False, "false"),
        license=_license(tags),
        architecture=text_field(gguf.get("architecture")) or text_field(config.get("model_type")),
        parameters=count(gguf.get("total")) or _safetensors_total(entry.get("safetensors")),
        library=text_field(entry.get("library_name")),
    )


def check_repo_id(value: object) -> str | None:
    """``owner/name`` by huggingface_hub's rules (no ``..`` or ``--``, 96 characters)."""
    if not isinstance(value, str) or len(value) > MAX_REPO_ID_CHARS:
        return None
    if not _REPO_ID_RE.fullmatch(value) or ".." in value or "--" in value:
        return None
    if any(part.startswith((".", "-")) or part.endswith((".", "-")) for part in value.split("/")):
        return None
    return value


def _commit(value: object) -> str | None:
    """The commit sha; None when it is not one (a hostile hub)."""
    try:
        return check_commit(value)
    except DownloadFailed:
        return None


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def count(value: object) -> int | None:
    """A non-negative integer the hub counted (downloads, parameters), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
        return None
    return value


def text_field(value: object, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A short display string: printable characters only, cut to ``max_chars``."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value[: max_chars * 4] if not _is_control(c))[:max_chars].strip()


def _is_control(char: str) -> bool:
    return unicodedata.category(char).startswith("C")


def _tags(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [text_field(t, 80) for t in value[:MAX_TAGS] if isinstance(t, str)]


def _license(tags: list[str]) -> str:
    found = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), "")
    return found[:MAX_TEXT_CHARS]


def _date(value: object) -> str:
    text = text_field(value, 32)
    return text if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", text) else ""


def _safetensors_total(value: object) -> int | None:
    return count(value.get("total")) if isinstance(value, dict) else None
