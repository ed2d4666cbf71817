"""Cancelling a pull from its progress callback (what the TUI's Cancel button does).

Real ``localchat.services.pull_model`` over real HTTP; the hub is the loopback fake hub, because the
real hub's internet address cannot be reached here.
"""

from __future__ import annotations

import hashlib

import pytest

from localchat.catalog import load_catalog
from localchat.paths import hf_cache_dir, partial_downloads_dir
from localchat.reference import parse_model_ref
from localchat.services import pull_model as pull
from tests.fixtures.fakehub import FakeHub, cache_files, fake_hub, make_gguf_like  # noqa: F401

REPO = "acme/cancel-GGUF"
FILE = "cancel-Q4_K_M.gguf"
DATA = make_gguf_like(6_000_000, seed=11)


class Cancelled(Exception):
    pass


def test_progress_callback_exception_cancels_and_the_next_pull_resumes(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.add_repo(REPO, {FILE: DATA})
    ref = parse_model_ref(f"{REPO}:Q4_K_M", load_catalog())
    seen_bytes: list[int] = []

    def cancel_midway(event) -> None:
        seen_bytes.append(event.overall_bytes_done)
        if event.overall_bytes_done >= 2_000_000:
            raise Cancelled

    with pytest.raises(Cancelled):
        pull(ref, progress=cancel_midway)
    assert cache_files(hf_cache_dir()) == {}  # nothing half-written is visible
    kept = sum(p.stat().st_size for p in partial_downloads_dir().rglob("*.incomplete"))
    assert kept >= 2_000_000

    fake_hub.reset_counters()
    local = pull(ref)
    assert hashlib.sha256(local.path.read_bytes()).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert fake_hub.bytes_served(FILE) <= len(DATA) - kept + len(DATA) // 100
