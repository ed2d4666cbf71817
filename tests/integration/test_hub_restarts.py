"""Download restart paths against real loopback HTTP servers (issue 9, hub code health).

``fetch_verified`` resumes with ``Range``; these are the paths where it must throw the
partial away and start over (``_Stream.restart``): a 416, a server that ignores
``Range``, a body longer than the hub listed, a partial longer than the file.  Plus
redirects to another host (no token sent there), and a ``.partXofY`` join that was
interrupted half way and resumes without downloading anything again.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localchat.errors import DownloadFailed
from localchat.hub.client import RetryPolicy
from localchat.hub.download import FetchJob, fetch_verified
from localchat.hub.layout import RepoCache
from localchat.hub.verify import ExpectedDigest
from localchat.paths import hf_cache_dir
from tests.fixtures.fakehub import (
    FakeHub,
    cache_files,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
    make_gguf_like,
)

BODY = make_gguf_like(300_000, 21)
FAST = RetryPolicy(attempts=4, backoff_base_s=0.01)


class Server(ThreadingHTTPServer):
    mode = "normal"  # normal | ignore_range | 416_once | longer | redirect
    requests: list[dict]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                "auth": self.headers.get("Authorization")})  # fmt: skip
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{server.server_address[1]}/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        match = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and server.mode != "ignore_range" else 0
        if match and server.mode == "416_once":
            server.mode = "normal"
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = BODY[start:] + (b"extra bytes" if server.mode == "longer" else b"")
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def job_for(server: Server, tmp_path: Path, path: str = "/file") -> FetchJob:
    digest = ExpectedDigest("sha256", hashlib.sha256(BODY).hexdigest(), len(BODY))
    return FetchJob(
        url=server.url + path,
        label="model.gguf",
        digest=digest,
        partial=tmp_path / "model.incomplete",
        headers={"Authorization": "Bearer secret"},
    )


def fetch(job: FetchJob) -> tuple[Path, list[int]]:
    restarts: list[int] = []
    path = fetch_verified(
        job, on_bytes=lambda n: None, policy=FAST, on_restart=lambda: restarts.append(1)
    )
    return path, restarts


@pytest.mark.parametrize("mode", ["ignore_range", "416_once"])
def test_resume_that_the_server_refuses_restarts_cleanly(
    mode: str, server: Server, tmp_path: Path
) -> None:
    job = job_for(server, tmp_path)
    job.partial.write_bytes(BODY[:100_000])
    server.mode = mode
    path, restarts = fetch(job)
    assert path.read_bytes() == BODY and restarts == [1]
    assert server.requests[0]["range"] == "bytes=100000-"


def test_a_partial_longer_than_the_file_is_discarded(server: Server, tmp_path: Path) -> None:
    job = job_for(server, tmp_path)
    job.partial.write_bytes(BODY + b"junk")
    path, restarts = fetch(job)
    assert path.read_bytes() == BODY and restarts == [1]
    assert server.requests[0]["range"] is None


def test_a_body_longer_than_announced_is_refused(server: Server, tmp_path: Path) -> None:
    server.mode = "longer"
    job = job_for(server, tmp_path)
    with pytest.raises(DownloadFailed, match="more than the 300000 bytes"):
        fetch(job)
    assert job.partial.stat().st_size == 0  # the partial was restarted, not kept


def test_a_resume_keeps_what_is_on_disk(server: Server, tmp_path: Path) -> None:
    job = job_for(server, tmp_path)
    job.partial.write_bytes(BODY[:250_000])
    path, restarts = fetch(job)
    assert path.read_bytes() == BODY and restarts == []
    assert [r["range"] for r in server.requests] == ["bytes=250000-"]


def test_redirects_are_followed_without_the_token(server: Server, tmp_path: Path) -> None:
    path, _ = fetch(job_for(server, tmp_path, "/redirect"))
    assert path.read_bytes() == BODY
    first, second = server.requests
    assert first["auth"] == "Bearer secret"
    assert second["path"] == "/file" and second["auth"] is None  # another host name


def test_an_interrupted_part_join_resumes_without_downloading(
    fake_hub: FakeHub,  # noqa: F811
    localchat_home: Path,
) -> None:
    repo_id = "acme/pieces-GGUF"
    pieces = [BODY[:100_000], BODY[100_000:200_000], BODY[200_000:]]  # 2 and 3 are equal
    names = [f"model-Q8_0.gguf.part{i}of3" for i in (1, 2, 3)]
    fake_hub.add_repo(repo_id, dict(zip(names, pieces, strict=True)))
    cache = RepoCache(repo_id, hf_cache_dir())
    etags = [hashlib.sha256(p).hexdigest() for p in pieces]
    target = cache.partial(hashlib.sha256("\n".join(etags).encode()).hexdigest())
    target.parent.mkdir(parents=True)
    # the state a kill leaves half way through appending piece 2: piece 1 became the
    # target, part of piece 2 was appended, pieces 2 and 3 are still there, verified
    target.write_bytes(pieces[0] + pieces[1][:5_000])
    for etag, piece in zip(etags[1:], pieces[1:], strict=True):
        cache.partial(etag).with_suffix(".verified").write_bytes(piece)
    env = {**os.environ, **hub_env(fake_hub), "LOCALCHAT_HOME": str(localchat_home)}
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "pull", f"{repo_id}:Q8_0"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert cache_files(hf_cache_dir())["model-Q8_0.gguf"].read_bytes() == BODY
    assert fake_hub.bytes_served() == 0
    assert not list(target.parent.glob("*.verified"))
