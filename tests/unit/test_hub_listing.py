"""A repo's file listing against the loopback fake hub: every page of the tree is read,
a next link to another host is refused (a token is never sent there), and a hub that
answers an error is one line at once, without huggingface_hub's back-off."""

from __future__ import annotations

import time

import pytest

from localchat.errors import DownloadFailed, ModelNotFound
from localchat.hub.listing import ONE_TRY, fetch_listing, list_files
from tests.fixtures.fakehub import FakeHub
from tests.fixtures.fakehub import fake_hub as fake_hub  # fixture

FILES = {f"part-{index}.gguf": bytes([index]) * (100 + index) for index in range(7)}


def test_every_page_of_the_tree_is_listed(fake_hub: FakeHub) -> None:
    fake_hub.tree_page_size = 2  # 7 files (and no folders): 4 pages
    commit = fake_hub.add_repo("acme/Paged-GGUF", FILES)
    listing = fetch_listing("acme/Paged-GGUF", "main")
    assert listing.commit == commit
    assert {f.path: f.size_bytes for f in listing.files} == {p: len(b) for p, b in FILES.items()}
    assert all(f.sha256 for f in listing.files)  # LFS files carry their sha256
    tree_gets = [r for r in fake_hub.log if "/tree/" in r.path]
    assert len(tree_gets) == 4


def test_a_next_link_to_another_host_is_refused(fake_hub: FakeHub) -> None:
    fake_hub.tree_page_size = 2
    fake_hub.tree_next_origin = "http://localhost:9"  # not the configured endpoint
    fake_hub.add_repo("acme/Paged-GGUF", FILES)
    with pytest.raises(DownloadFailed, match="another host"):
        list_files("acme/Paged-GGUF", "main", policy=ONE_TRY)


def test_a_missing_repo_is_said_at_once(fake_hub: FakeHub) -> None:
    started_s = time.monotonic()
    with pytest.raises(ModelNotFound):
        list_files("acme/Nothing-GGUF", "main", policy=ONE_TRY)
    assert time.monotonic() - started_s < 5.0  # no back-off between tries
