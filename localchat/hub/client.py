"""Talking to the hub through huggingface_hub: endpoint, token, repo listing, errors, retries.

Every huggingface_hub / httpx2 exception is turned into a localchat error here,
so callers only ever see ``ModelNotFound``, ``AuthRequired`` or ``DownloadFailed``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from localchat.errors import AuthRequired, DownloadFailed, LocalchatError, ModelNotFound

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
LOGIN_HINT = "set HF_TOKEN or run `hf auth login`"


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as it is now (huggingface_hub only reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def is_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "on", "yes", "true"}


def repo_page(repo_id: str) -> str:
    return f"{hub_endpoint()}/{repo_id}"


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (connection drop, timeout, 5xx, 429) are retried with backoff.

    ``attempts`` counts consecutive failures without progress: a download that keeps
    moving forward is never given up on.  Defaults come from
    ``LOCALCHAT_DOWNLOAD_RETRIES`` and ``LOCALCHAT_DOWNLOAD_BACKOFF_S``.
    """

    attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            attempts=int(os.environ.get("LOCALCHAT_DOWNLOAD_RETRIES", cls.attempts)),
            backoff_base_s=float(
                os.environ.get("LOCALCHAT_DOWNLOAD_BACKOFF_S", cls.backoff_base_s)
            ),
        )

    def delay_s(self, failure_number: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, failure_number - 1))
        return float(delay * (0.75 + random.random() / 2))


class TransientError(Exception):
    """A failure worth retrying; ``cause`` says what happened, for the final message."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def is_transient(exc: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, TransientError | httpx2.TransportError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in (408, 429) or exc.response.status_code >= 500
    return False


def describe_transient(exc: BaseException) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, TransientError):
        return exc.cause
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return network_reason(exc)


_PLAIN_REASONS = (
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("connection reset", "connection reset"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
)


def network_reason(exc: BaseException) -> str:
    """A transport failure in a few plain words ("connection refused", "timed out", ...)."""
    text = f"{type(exc).__name__} {exc}".lower()
    for marker, words in _PLAIN_REASONS:
        if marker in text:
            return words
    return _first_line(exc)


def network_error(exc: BaseException, what: str, *, hint: str) -> DownloadFailed:
    """One line for a transport failure that is not retried here (DNS and TLS say so)."""
    permanent = permanent_network_error(exc, what)
    if permanent is not None:
        return permanent
    return DownloadFailed(
        f"{what}: cannot reach {hub_endpoint()} ({network_reason(exc)})", hint=hint
    )


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[str, float], None] | None = None,
) -> T:
    """Run ``call``; retry transient failures; map the last one to DownloadFailed."""
    policy = policy or RetryPolicy.from_env()
    failures = 0
    while True:
        try:
            with hub_errors(what):
                return call()
        except TransientError as exc:
            failures += 1
            if failures >= policy.attempts:
                raise DownloadFailed(
                    f"{what}: {exc.cause} (gave up after {failures} tries)",
                    hint=f"check the connection to {hub_endpoint()} and run the command again",
                ) from exc
            delay = policy.delay_s(failures)
            if on_retry is not None:
                on_retry(exc.cause, delay)
            time.sleep(delay)


@contextmanager
def hub_errors(what: str, *, repo_id: str | None = None) -> Iterator[None]:
    """Translate huggingface_hub errors raised inside into localchat errors."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as exc:
        raise gated_error(exc.repo_id or repo_id or what) from exc
    except RepositoryNotFoundError as exc:
        name = exc.repo_id or repo_id or what
        raise ModelNotFound(
            f"{name} was not found on the hub (or it is private)",
            hint=f"check the name at {repo_page(name)}; for a private repo {LOGIN_HINT}",
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFound(
            f"{what}: revision not found on the hub", hint="pull with --update to follow the repo"
        ) from exc
    except EntryNotFoundError as exc:
        raise ModelNotFound(f"{what}: file not found on the hub") from exc
    except OfflineModeIsEnabled as exc:
        raise ModelNotFound(
            f"{what}: HF_HUB_OFFLINE=1 is set", hint="unset it to download"
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if is_transient(exc):
            raise TransientError(describe_transient(exc)) from exc
        raise status_error(status, what, repo_id=repo_id) from exc
    except HFValidationError as exc:
        raise ModelNotFound(
            f"{(repo_id or what)[:100]!r} is not a valid hub repo id",
            hint="write owner/repo (letters, digits, '-', '_', '.'; at most 96 characters)",
        ) from exc
    except TransientError:
        raise
    except Exception as exc:
        permanent = permanent_network_error(exc, what)
        if permanent is not None:
            raise permanent from exc
        if is_transient(exc):
            raise TransientError(describe_transient(exc)) from exc
        raise


def permanent_network_error(exc: BaseException, what: str) -> DownloadFailed | None:
    """DNS and TLS failures: retrying them only wastes the user's time."""
    if is_unresolvable_host(exc):
        return DownloadFailed(
            f"{what}: cannot reach {hub_endpoint()} (the host name does not resolve)",
            hint="check the network, or set HF_HUB_OFFLINE=1 to use only what is on disk",
        )
    if is_tls_failure(exc):
        return DownloadFailed(
            f"{what}: the secure connection to {hub_endpoint()} failed ({_first_line(exc)})",
            hint="check the system clock, a proxy or SSL_CERT_FILE; not retried",
        )
    return None


_TLS_MARKERS = ("certificate verify failed", "ssl:", "sslerror", "tlsv1 alert", "wrong version")


def is_tls_failure(exc: BaseException) -> bool:
    """A TLS handshake or certificate failure anywhere in the cause chain."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        if any(marker in str(seen).lower() for marker in _TLS_MARKERS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return text[:120] if text else type(exc).__name__


_NAME_RESOLUTION_MARKERS = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "no address associated with hostname",
)


def is_unresolvable_host(exc: BaseException) -> bool:
    """A DNS failure: no network (or no such host).  Retrying it only wastes the user's time."""
    import socket

    seen: BaseException | None = exc
    for _ in range(8):  # walk the cause chain a few links deep
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return True
        if any(marker in str(seen).lower() for marker in _NAME_RESOLUTION_MARKERS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def status_error(status: int, what: str, *, repo_id: str | None = None) -> LocalchatError:
    """The one map from a hub's HTTP status to a localchat error, for every hub request
    (listings, remote GGUF headers, downloads).  Callers retry what ``is_transient`` says."""
    if status in (401, 403):
        return gated_error(repo_id or what)
    if status == 404:
        return ModelNotFound(
            f"{what}: not found on the hub (HTTP 404)",
            hint=f"check the name; for a private repo {LOGIN_HINT}",
        )
    if status == 416:
        return DownloadFailed(f"{what}: the hub says the file is shorter than expected (HTTP 416)")
    if status in (408, 429) or status >= 500:
        return DownloadFailed(
            f"{what}: the hub answered HTTP {status}", hint="the hub is busy; try again later"
        )
    return DownloadFailed(f"{what}: the hub answered HTTP {status}")


def gated_error(repo_id: str) -> AuthRequired:
    return AuthRequired(
        f"{repo_id} is gated: accept its terms at {repo_page(repo_id)}",
        hint=f"then {LOGIN_HINT} with a token that has access",
    )
