"""The hub's JSON listings read with bounds: a page is read to at most ``MAX_PAGE_BYTES``
(never ``response.json()`` on whatever arrives), pages follow the hub's ``Link: <...>;
rel="next"`` header as huggingface_hub's ``paginate`` does, but only on the configured
endpoint (a token is never sent elsewhere), and one request is one try: the caller decides
about retries (``hub.client.with_retries``), so an unreachable hub is said at once instead
of after huggingface_hub's own back-off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from localchat.errors import DownloadFailed, LocalchatError
from localchat.hub.client import hub_endpoint, network_error
from localchat.hub.ranges import auth_headers

MAX_PAGE_BYTES = 8 << 20  # the real hub sends ~2 kB per repo or ~200 B per file

StatusCheck = Callable[[int], None]  # raises the error a status means; returns on 200


@dataclass(frozen=True)
class JsonListing:
    """How to read one of the hub's listings: ``what`` names it in errors, ``check_status``
    judges each answer's status, ``hint`` goes with a transport failure, which is one
    ``DownloadFailed`` line or (``raw_transport_errors``) left for the caller's retry loop
    to judge (``hub.client.with_retries``)."""

    what: str
    check_status: StatusCheck
    hint: str
    timeout_s: float
    raw_transport_errors: bool = False

    def pages(self, url: str, params: dict[str, Any] | None, max_pages: int) -> Iterator[list[Any]]:
        """Each page (a JSON array) at ``url``, ``max_pages`` at most; a next link to
        another host ends the listing."""
        next_url: str | None = url
        query = params
        for _ in range(max_pages):
            if next_url is None or not same_origin(next_url):
                return
            page, next_url = self.page(next_url, query)
            query = None  # the next link carries the query
            yield page

    def page(self, url: str, params: dict[str, Any] | None) -> tuple[list[Any], str | None]:
        """One page (a JSON array), read to at most ``MAX_PAGE_BYTES``, and the next page's
        URL from the ``Link`` header."""
        from huggingface_hub import get_session  # slow to import: only when the hub is asked

        try:
            with get_session().stream(
                "GET", url, params=params, headers=auth_headers(None), timeout=self.timeout_s,
                follow_redirects=True,
            ) as response:  # fmt: skip
                self.check_status(response.status_code)
                body = _read_capped(response.iter_bytes(), MAX_PAGE_BYTES, self.what)
                next_url = response.links.get("next", {}).get("url")
        except LocalchatError:
            raise
        except Exception as exc:  # network boundary: any transport error becomes one line
            if self.raw_transport_errors:
                raise
            raise network_error(exc, self.what, hint=self.hint) from exc
        return _json_array(body, self.what), next_url if isinstance(next_url, str) else None


def same_origin(url: str | None) -> bool:
    """Pages are followed on the configured hub only: a token is never sent elsewhere."""
    if url is None:
        return False
    here, there = urlsplit(hub_endpoint()), urlsplit(url)
    return (here.scheme, here.netloc) == (there.scheme, there.netloc)


def _read_capped(chunks: Iterable[bytes], max_bytes: int, what: str) -> bytes:
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        have += len(chunk)
        if have > max_bytes:
            raise DownloadFailed(
                f"{what}: the hub's answer is larger than {max_bytes >> 20} MB; refused",
                hint="check HF_ENDPOINT: only trusted hubs should answer it",
            )
        parts.append(chunk)
    return b"".join(parts)


def _json_array(body: bytes, what: str) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting thousands deep
        raise DownloadFailed(f"{what}: the hub's answer is not valid JSON") from exc
    if not isinstance(data, list):
        raise DownloadFailed(f"{what}: the hub's answer is not a list")
    return data
