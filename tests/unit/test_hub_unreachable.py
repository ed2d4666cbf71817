"""A hub whose host name does not resolve (no network) fails at once, without retries."""

from __future__ import annotations

import socket

import pytest

from localchat.errors import DownloadFailed
from localchat.hub.client import TransientError, hub_errors, is_unresolvable_host, with_retries


def test_gaierror_anywhere_in_the_chain_is_unresolvable() -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as inner:
            raise ConnectionError("wrapped") from inner
    except ConnectionError as outer:
        assert is_unresolvable_host(outer)
    assert not is_unresolvable_host(ConnectionResetError("peer reset"))


def test_dns_failure_is_not_retried() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        socket.getaddrinfo("hub.invalid", 443)  # .invalid never resolves (RFC 2606)

    with pytest.raises(DownloadFailed) as caught:
        with_retries(call, what="listing acme/x")
    assert calls == [1]
    assert "does not resolve" in caught.value.one_line()


def test_a_dropped_connection_is_still_transient() -> None:
    with pytest.raises(TransientError), hub_errors("x"):
        raise ConnectionResetError("peer reset")  # the caller's retry loop retries it
