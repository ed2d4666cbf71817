"""Remote headers by HTTP Range against a loopback server standing in for the hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.errors import AuthRequired, CorruptModelFile, ModelNotFound
from localchat.gguf import read_gguf
from localchat.hub.ranges import read_remote_gguf
from tests.fixtures.gguf_files import RangeServer, serve_file, tiny_spec, write_split_gguf


def test_remote_header_matches_local_and_reads_little(
    gguf_range_server: RangeServer, llama70b_q4_k_m_gguf: Path
) -> None:
    serve_file(gguf_range_server, "me/Llama-GGUF", "L-Q4_K_M.gguf", llama70b_q4_k_m_gguf)
    remote = read_remote_gguf("me/Llama-GGUF", ["L-Q4_K_M.gguf"], "main")
    local = read_gguf(llama70b_q4_k_m_gguf)
    assert remote.layers == local.layers
    assert remote.input_bytes == local.input_bytes
    assert remote.n_vocab == 128256
    assert remote.file_bytes == llama70b_q4_k_m_gguf.stat().st_size
    assert remote.source == "remote header"
    assert gguf_range_server.bytes_sent < 16 << 20  # a few MB of a 42 GB file
    assert len(gguf_range_server.requests) <= 4


def test_remote_split_reads_each_part(gguf_range_server: RangeServer, tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", tiny_spec(), 2)
    names = [f"sub/{p.name}" for p in parts]
    for name, path in zip(names, parts, strict=True):
        serve_file(gguf_range_server, "me/tiny", name, path)
    info = read_remote_gguf("me/tiny", names)
    assert info.files == tuple(names)  # repo paths, as the hub names them
    assert info.weights_bytes == tiny_spec().tensor_bytes


def test_concatenated_pieces_read_only_the_first(
    gguf_range_server: RangeServer, tiny_gguf: Path
) -> None:
    serve_file(gguf_range_server, "me/tiny", "t.gguf.part1of2", tiny_gguf)
    info = read_remote_gguf("me/tiny", ["t.gguf.part2of2", "t.gguf.part1of2"])
    assert info.n_layers == 4
    assert all("part1of2" in r for r in gguf_range_server.requests)


def test_server_without_range_support(gguf_range_server: RangeServer, tiny_gguf: Path) -> None:
    gguf_range_server.honour_range = False
    serve_file(gguf_range_server, "me/tiny", "t.gguf", tiny_gguf)
    assert read_remote_gguf("me/tiny", ["t.gguf"]).n_layers == 4


def test_errors_map_to_localchat_errors(gguf_range_server: RangeServer, tiny_gguf: Path) -> None:
    with pytest.raises(ModelNotFound):
        read_remote_gguf("me/none", ["x.gguf"])
    gguf_range_server.status_override["/me/gated/resolve/main/x.gguf"] = 401
    with pytest.raises(AuthRequired):
        read_remote_gguf("me/gated", ["x.gguf"])
    truncated = tiny_gguf.parent / "short.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:5000])
    serve_file(gguf_range_server, "me/short", "short.gguf", truncated)
    with pytest.raises(CorruptModelFile, match="truncated"):
        read_remote_gguf("me/short", ["short.gguf"])
