"""llama.cpp RPC workers, for real on both sides: `localchat worker` processes on 127.0.0.1
serving their CPU, and `localchat ask --rpc` spreading the real gemma-3-270m over them.

Every client runs in a subprocess: ggml cannot unregister a worker, and a process that
registered one connects to it at every later load, so the pytest process never does.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import unused_port
from tests.integration.cli import assert_one_clean_error_line, localchat_env, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]
llama_cpp = pytest.importorskip("llama_cpp")
if not llama_cpp.llama_supports_rpc():
    pytest.skip("llama-cpp-python was built without -DGGML_RPC=on", allow_module_level=True)

PROMPT = "The three primary colors are"
MiB = 1 << 20


@dataclass
class Worker:
    process: subprocess.Popen[str]
    endpoint: str
    ready_line: str

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=20)


def start_worker(home: Path, *args: str, port: int | None = None) -> Worker:
    port = port or unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "worker", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=localchat_env(home),
    )
    line = _read_line(process, timeout_s=60)
    if not line.startswith("localchat worker: serving"):
        process.kill()
        raise AssertionError(f"worker did not start: {line!r} {process.stderr.read()}")
    return Worker(process, f"127.0.0.1:{port}", line)


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline() if ready else ""


@pytest.fixture
def workers(localchat_home: Path) -> Iterator[list[Worker]]:
    """Two workers on free loopback ports, stopped (or killed) whatever the test did."""
    started: list[Worker] = []
    try:
        started.append(start_worker(localchat_home))
        started.append(start_worker(localchat_home))
        yield started
    finally:
        for worker in started:
            worker.stop()


def ask(home: Path, model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_localchat(
        home, "ask", "-m", str(model), "--temperature", "0", "--max-tokens", "24",
        "--no-pull", *extra, PROMPT, timeout_s=300,
    )  # fmt: skip


def test_two_workers_give_the_local_text_and_the_planned_buffers(
    workers: list[Worker], gemma_path: Path, localchat_home: Path
) -> None:
    local = ask(localchat_home, gemma_path)
    assert local.returncode == 0, local.stderr
    rpc = ",".join(worker.endpoint for worker in workers)
    remote = ask(localchat_home, gemma_path, "--rpc", rpc, "--json", "--verbose")
    assert remote.returncode == 0, remote.stderr
    answer = json.loads(remote.stdout)
    assert answer["text"].strip() == local.stdout.strip() != ""

    plan = answer["plan"]
    assert plan["rpc_servers"] == [worker.endpoint for worker in workers]
    assert plan["n_gpu_layers"] == plan["n_layers"] + 1
    planned = {device["device"]: device for device in plan["devices"]}
    logged = _buffers_by_endpoint(remote.stderr)
    for index, worker in enumerate(workers):
        device = planned[f"RPC{index}"]
        assert device["weights"] > 0 and device["kv"] > 0
        assert abs(logged[worker.endpoint]["model"] - device["weights"]) < MiB, logged
        assert abs(logged[worker.endpoint]["KV"] - device["kv"]) < MiB, logged
    assert "input embedding" in planned["CPU"]["holds"]
    # the workers keep tensors over 10 MiB by hash, so a second load does not resend them
    cached = list((localchat_home / "data" / "rpc-cache").iterdir())
    assert cached and max(path.stat().st_size for path in cached) > 10 * MiB


def _buffers_by_endpoint(log: str) -> dict[str, dict[str, float]]:
    """llama.cpp's 'RPC0[127.0.0.1:PORT] model|KV buffer size = X MiB' lines, summed."""
    sizes: dict[str, dict[str, float]] = {}
    pattern = r"RPC\d+\[([\d.]+:\d+)\] (model|KV) buffer size =\s+([\d.]+) MiB"
    for endpoint, kind, mib in re.findall(pattern, log):
        bucket = sizes.setdefault(endpoint, {"model": 0.0, "KV": 0.0})
        bucket[kind] += float(mib) * MiB
    return sizes


def test_a_dead_endpoint_is_named_and_nothing_loads(gemma_path: Path, localchat_home: Path) -> None:
    dead = f"127.0.0.1:{unused_port()}"
    result = ask(localchat_home, gemma_path, "--rpc", dead)
    assert_one_clean_error_line(result, 7)
    assert dead in result.stderr
    log = localchat_home / "logs" / "llama.log"
    assert not log.exists() or "load_tensors" not in log.read_text(errors="replace")


def test_a_worker_killed_mid_reply_ends_with_one_line_and_keeps_the_partial_reply(
    workers: list[Worker], gemma_path: Path, localchat_home: Path
) -> None:
    rpc = ",".join(worker.endpoint for worker in workers)
    client = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", str(gemma_path), "--rpc", rpc,
         "--temperature", "0", "--max-tokens", "0", "--no-pull", "Write a long story about a dragon."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=localchat_env(localchat_home),
    )  # fmt: skip
    try:
        shown = _first_output(client, timeout_s=240)
        assert shown.strip(), "no reply streamed before the kill"
        victim = workers[1]
        victim.process.kill()  # SIGKILL: no goodbye on the socket's other end
        victim.process.wait(timeout=20)
        stdout, stderr = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 7, stderr
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("localchat: error: "), stderr
    assert victim.endpoint in lines[0] and "Traceback" not in stderr.decode(), lines

    from localchat.history import HistoryStore

    with HistoryStore() as history:
        last = history.latest_conversation()
        assert last is not None
        replies = [m.content for m in history.messages(last.id) if m.role == "assistant"]
    streamed = (shown.encode() + stdout).decode(errors="replace")
    assert replies and replies[-1].strip() and replies[-1].strip() in streamed


def _first_output(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            data = os.read(process.stdout.fileno(), 4096)
            if data.strip():
                return data.decode(errors="replace")
            if not data:
                break
    return ""


def test_a_build_without_rpc_says_how_to_rebuild(
    monkeypatch: pytest.MonkeyPatch, gemma_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The capability check reports no RPC (simulated: only the library's RPC registry
    says so); the endpoint is never contacted, nothing is registered or loaded."""
    from localchat.cli.main import main
    from localchat.llamacpp import library

    monkeypatch.setattr(library().native.rpc, "supported", False)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))  # nothing piped
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "-m", str(gemma_path), "--no-pull", "--rpc", "127.0.0.1:9", "hi"])
    assert exit_info.value.code == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("localchat: error: "), err
    assert "RPC" in err[0]
    assert "-DGGML_RPC=on" in err[0] and "--no-cache-dir" in err[0]


def test_the_default_worker_listens_on_loopback_only_and_stops_cleanly(
    localchat_home: Path,
) -> None:
    worker = start_worker(localchat_home)
    try:
        assert worker.endpoint in worker.ready_line and "GiB free" in worker.ready_line
        listening = {
            c.laddr.ip
            for c in psutil.Process(worker.process.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        assert worker.process.stderr is not None
    finally:
        code = worker.stop()
    assert code == 0
    rest = worker.process.stdout.read()
    assert "stopped" in rest
    assert "authentication" not in worker.process.stderr.read()


def test_a_network_bind_needs_the_flag_and_always_warns(localchat_home: Path) -> None:
    refused = run_localchat(localchat_home, "worker", "--host", "0.0.0.0", "--port", "50999")
    assert_one_clean_error_line(refused, 2)
    assert "--allow-network" in refused.stderr
    worker = start_worker(localchat_home, "--host", "0.0.0.0", "--allow-network")
    try:
        warning = worker.process.stderr.readline()
    finally:
        worker.stop()
    assert "no authentication" in warning and "SSH tunnel" in warning
