"""Remote headers by HTTP Range against a loopback server standing in for the hub."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localchat.errors import AuthRequired, CorruptModelFile, ModelNotFound
from localchat.gguf import read_gguf, read_remote_gguf
from tests.fixtures.gguf_files import (  # noqa: F401  (pytest fixtures)
    gguf_dir,
    llama70b_q4_k_m_gguf,
    mixtral_q4_0_gguf,
    tiny_gguf,
    tiny_spec,
    write_split_gguf,
)

_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")


class _RangeServer(ThreadingHTTPServer):
    files: dict[str, Path]
    status_override: dict[str, int]
    honour_range: bool
    bytes_sent: int
    requests: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _RangeServer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        status = self.server.status_override.get(self.path)
        if status:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.server.files.get(self.path)
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        match = _RANGE_RE.match(self.headers.get("Range", ""))
        if match and self.server.honour_range:
            start = int(match.group(1))
            end = min(int(match.group(2) or size - 1), size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            start, end = 0, min(size - 1, 64 << 20)  # never stream a sparse 40 GB body
            self.send_response(200)
        length = end - start + 1
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with path.open("rb") as f:
            f.seek(start)
            data = f.read(length)
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return
        self.server.bytes_sent += len(data)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RangeServer]:
    server = _RangeServer(("127.0.0.1", 0), _Handler)
    server.files, server.status_override, server.requests = {}, {}, []
    server.honour_range, server.bytes_sent = True, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.shutdown()
    server.server_close()


def _serve(hub: _RangeServer, repo: str, name: str, path: Path) -> None:
    hub.files[f"/{repo}/resolve/main/{name}"] = path


def test_remote_header_matches_local_and_reads_little(
    hub: _RangeServer, llama70b_q4_k_m_gguf: Path
) -> None:
    _serve(hub, "me/Llama-GGUF", "L-Q4_K_M.gguf", llama70b_q4_k_m_gguf)
    remote = read_remote_gguf("me/Llama-GGUF", ["L-Q4_K_M.gguf"], "main")
    local = read_gguf(llama70b_q4_k_m_gguf)
    assert remote.layers == local.layers
    assert remote.input_bytes == local.input_bytes
    assert remote.n_vocab == 128256
    assert remote.file_bytes == llama70b_q4_k_m_gguf.stat().st_size
    assert remote.source == "remote header"
    assert hub.bytes_sent < 16 << 20  # a few MB of a 42 GB file
    assert len(hub.requests) <= 4


def test_remote_split_reads_each_part(hub: _RangeServer, tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 2)
    names = [f"sub/{p.name}" for p in parts]
    for name, path in zip(names, parts, strict=True):
        _serve(hub, "me/tiny", name, path)
    info = read_remote_gguf("me/tiny", names)
    assert info.files == tuple(p.name for p in parts)
    assert info.weights_bytes == tiny_spec().tensor_bytes


def test_concatenated_pieces_read_only_the_first(hub: _RangeServer, tiny_gguf: Path) -> None:
    _serve(hub, "me/tiny", "t.gguf.part1of2", tiny_gguf)
    info = read_remote_gguf("me/tiny", ["t.gguf.part2of2", "t.gguf.part1of2"])
    assert info.n_layers == 4
    assert all("part1of2" in r for r in hub.requests)


def test_server_without_range_support(hub: _RangeServer, tiny_gguf: Path) -> None:
    hub.honour_range = False
    _serve(hub, "me/tiny", "t.gguf", tiny_gguf)
    assert read_remote_gguf("me/tiny", ["t.gguf"]).n_layers == 4


def test_errors_map_to_localchat_errors(hub: _RangeServer, tiny_gguf: Path) -> None:
    with pytest.raises(ModelNotFound):
        read_remote_gguf("me/none", ["x.gguf"])
    hub.status_override["/me/gated/resolve/main/x.gguf"] = 401
    with pytest.raises(AuthRequired):
        read_remote_gguf("me/gated", ["x.gguf"])
    truncated = tiny_gguf.parent / "short.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:5000])
    _serve(hub, "me/short", "short.gguf", truncated)
    with pytest.raises(CorruptModelFile, match="truncated"):
        read_remote_gguf("me/short", ["short.gguf"])
