"""RPC workers as hardware and in plans: endpoints, link speeds, the bounded probe (against
small loopback servers that misbehave on purpose), the per-device plan and its network."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from localchat.addresses import Endpoint, parse_endpoint, parse_endpoints, parse_link
from localchat.errors import ConfigError, WorkerUnavailable
from localchat.hardware.rpc import probe_worker


def test_endpoints_parse_in_order_and_bad_ones_are_named() -> None:
    assert parse_endpoints("10.0.0.2:50052, box:6000") == (
        Endpoint("10.0.0.2", 50052),
        Endpoint("box", 6000),
    )
    assert parse_endpoints("") == () and parse_endpoints(None) == ()
    for bad in ("nohost", ":50052", "host:", "host:0", "host:70000", "::1:50052", "h:p"):
        with pytest.raises(ConfigError, match=r"RPC endpoint|port out of range"):
            parse_endpoint(bad)
    with pytest.raises(ConfigError, match="twice"):
        parse_endpoints("a:1,a:1")
    assert (
        parse_endpoint("localhost:1").is_loopback and not parse_endpoint("10.1.2.3:1").is_loopback
    )


def test_link_speeds_are_bits_unless_bytes_are_written() -> None:
    assert parse_link("1Gbit") == 125e6
    assert parse_link("2.5gbit") == 312.5e6
    assert parse_link("100Mbps") == 12.5e6
    assert parse_link("1GB/s") == 1e9
    for bad in ("fast", "0Gbit", "1GiB"):
        with pytest.raises(ConfigError):
            parse_link(bad)


@pytest.fixture
def fake_worker() -> Iterator[tuple[Endpoint, list]]:
    """A loopback TCP server that answers each connection with the bytes queued for it
    (or nothing); the probe under test is the real one."""
    replies: list[bytes | None] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(1 + 8 + 24)  # HELLO
            reply = replies[0] if replies else None
            if reply is None:
                conn.recv(1)  # say nothing until the client gives up
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Endpoint("127.0.0.1", server.getsockname()[1]), replies
    server.close()
    thread.join(timeout=5)


def test_a_refused_endpoint_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(WorkerUnavailable, match=re.escape(f"127.0.0.1:{port} is not usable")):
            probe_worker(Endpoint("127.0.0.1", port), timeout_s=1)


def test_a_silent_worker_times_out_instead_of_hanging(fake_worker) -> None:
    endpoint, _ = fake_worker
    with pytest.raises(WorkerUnavailable, match="did not answer in time"):
        probe_worker(endpoint, timeout_s=0.3)


def test_another_protocol_version_is_refused_before_llama_cpp_sees_it(fake_worker) -> None:
    endpoint, replies = fake_worker
    replies.append(struct.pack("<Q", 28) + bytes([6, 1, 0, 0]) + bytes(24))
    with pytest.raises(WorkerUnavailable, match=re.escape("protocol 6.1.0")):
        probe_worker(endpoint, timeout_s=2)


def _plan_json(*args: str) -> dict:
    from click.testing import CliRunner

    from localchat.cli.plan_cmd import plan

    result = CliRunner().invoke(plan, ["nemotron-70b", "--offline", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_what_if_a_remote_worker_plans_each_device_and_the_network() -> None:
    with_worker = _plan_json("--vram", "24GiB", "--remote", "24GiB")
    two_gpus = _plan_json("--vram", "24GiB", "--vram", "24GiB")
    devices = {d["device"]: d for d in with_worker["devices"]}
    assert list(devices) == ["RPC0", "GPU0", "CPU"]  # llama.cpp lists workers first
    assert devices["RPC0"]["holds"].startswith("layers 0-")
    assert devices["GPU0"]["holds"].endswith("output")
    for name in ("RPC0", "GPU0"):
        assert 0 < devices[name]["total"] <= devices[name]["budget"]
    network = with_worker["network"]
    assert network["hops_per_token"] == 2  # CPU -> worker -> GPU; the logits stay local
    assert network["remote_weights_bytes"] == devices["RPC0"]["weights"]
    assert network["first_load_s"] == pytest.approx(devices["RPC0"]["weights"] / 125e6, 1e-3)
    # the same memory and bandwidth one network hop away: the same quant, a bit slower
    assert with_worker["quant"] == two_gpus["quant"]
    assert with_worker["predicted_tok_s"] < two_gpus["predicted_tok_s"]
    assert with_worker["rpc_servers"] == []  # what-if workers are never contacted
    assert any("first load sends" in reason for reason in with_worker["reasons"])


def test_a_slower_link_makes_the_first_load_longer() -> None:
    fast = _plan_json("--vram", "24GiB", "--remote", "24GiB", "--link", "10Gbit")
    slow = _plan_json("--vram", "24GiB", "--remote", "24GiB")
    assert slow["network"]["first_load_s"] == pytest.approx(fast["network"]["first_load_s"] * 10)
    assert slow["network"]["per_token_s"] > fast["network"]["per_token_s"]


def test_device_split_gives_unused_registered_workers_nothing() -> None:
    from localchat.engine import rpc

    registered = {"a:1": 1, "b:2": 2, "c:3": 1}
    assert rpc.device_split(("b:2",), (0.3, 0.3, 0.4), registered) == [0.0, 0.3, 0.3, 0.0, 0.4]
    assert rpc.device_split(("c:3",), None, registered) == [0.0, 0.0, 0.0, 1.0]
    assert rpc.device_split((), (0.5, 0.5), registered) == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]
    assert rpc.device_split((), (0.5, 0.5), {}) == [0.5, 0.5]


def test_doctor_says_how_to_rebuild_without_rpc() -> None:
    from localchat.hardware.types import LlamaBuildInfo
    from localchat.services.doctor import Facts, check_rpc

    without = check_rpc(Facts(python="py", build=LlamaBuildInfo("0.3.36", False)))
    assert without is not None and "not built in" in without.line()
    assert "-DGGML_RPC=on" in without.line() and "--no-cache-dir" in without.line()
    assert "py -m pip install" in without.line()
    built = LlamaBuildInfo("0.3.36", False, supports_rpc=True)
    assert check_rpc(Facts(build=built)).ok


def test_settings_refuse_a_malformed_rpc_value() -> None:
    from localchat.settings import settings_from_dict

    assert settings_from_dict({"rpc": "127.0.0.1:50052"}).rpc == "127.0.0.1:50052"
    with pytest.raises(ConfigError, match="RPC endpoint"):
        settings_from_dict({"rpc": "127.0.0.1"})
