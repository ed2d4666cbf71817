"""``localchat serve`` against the alternatives, alternating, in one run on gemma-3-270m:

  (a) a second ``ask`` with the server warm against a cold ``ask --local``: wall time
      and time to the first byte on stdout, each measured from process start;
  (b) decode tok/s streamed through the server (client clock, one SSE chunk a token)
      against the same generation in-process (``LoadedModel.stream_completion``);
      target >= 0.97x;
  (c) 8 concurrent clients: throughput and p50/p95 request latency against
      ``python -m llama_cpp.server`` on the same GGUF, context, batch and threads.

Prints a table and writes bench/results/serve.json.  Asserts nothing.  Run it alone:

    flock /tmp/localchat-bench.lock python bench/serve.py [--runs 3] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

RESULTS = Path(__file__).parent / "results" / "serve.json"
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
N_CTX = 2048
ASK_ARGS = ("--temperature", "0", "--seed", "7", "--max-tokens", "16", "--ctx", str(N_CTX))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready")


def start(command: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wait_ready(ready_url, process)
    return process


def timed_ask(env: dict[str, str], *extra: str) -> dict[str, float]:
    """Wall time and first stdout byte of one ``localchat ask``, from process start."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", "gemma-3-270m", *ASK_ARGS, *extra,
         "The capital of France is"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.read(1)
    first_at = time.perf_counter()
    process.stdout.read()
    if process.wait() != 0 or not first:
        raise SystemExit(f"ask {' '.join(extra)} failed")
    return {"wall_s": time.perf_counter() - started, "first_byte_s": first_at - started}


def stream_tok_s(base: str, n_tokens: int) -> float:
    """Client-side decode rate of a streamed /v1/completions (one chunk per token)."""
    body = {"model": "gemma-3-270m", "prompt": COUNTING, "max_tokens": n_tokens,
            "temperature": 0, "stream": True, "num_ctx": N_CTX}  # fmt: skip
    arrivals = []
    with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=300) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:") and '"text": ""' not in line and "[DONE]" not in line:
                arrivals.append(time.perf_counter())
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


def in_process_tok_s(model: Any, n_tokens: int) -> float:
    from localchat.types import SamplingParams

    sampling = SamplingParams(temperature=0, max_tokens=n_tokens)
    arrivals = [time.perf_counter() for _ in model.stream_completion(COUNTING, sampling)]
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


async def concurrent_round(base: str, model: str, clients: int, n_tokens: int) -> dict[str, float]:
    """``clients`` requests at once; throughput and latency percentiles."""

    async def one(client: httpx.AsyncClient, n: int) -> tuple[float, int]:
        body = {"model": model, "prompt": f"Item {n}. {COUNTING}", "max_tokens": n_tokens,
                "temperature": 0, "num_ctx": N_CTX}  # fmt: skip
        started = time.perf_counter()
        reply = await client.post(f"{base}/v1/completions", json=body, timeout=600)
        reply.raise_for_status()
        return time.perf_counter() - started, int(reply.json()["usage"]["completion_tokens"])

    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(one(client, n) for n in range(clients)))
        wall_s = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {
        "tokens_per_s": sum(r[1] for r in results) / wall_s,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False) or 1)
    args = parser.parse_args()

    from localchat.api import open_model
    from localchat.catalog import load_catalog
    from localchat.store.local import pip_model_file

    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "LOCALCHAT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    os.environ.update(LOCALCHAT_HOME=str(home), LOCALCHAT_HOST="off")
    entry = load_catalog().get("gemma-3-270m")
    gguf = pip_model_file(entry.name, entry.pip)
    port, llama_port = free_port(), free_port()
    base, llama_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{llama_port}"
    threads = str(args.threads)
    servers = [
        start([sys.executable, "-m", "localchat", "serve", "--port", str(port), "--threads", threads],
              {**env, "LOCALCHAT_HOST": "off"}, f"{base}/api/version"),
        start([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(llama_port),
               "--n_ctx", str(N_CTX), "--n_threads", threads, "--n_batch", "512", "--model_alias", "gemma"],
              env, f"{llama_base}/v1/models"),
    ]  # fmt: skip
    rows: dict[str, list[Any]] = {
        k: [] for k in ("cold", "warm", "inproc", "served", "ours", "llama")
    }
    try:
        model = open_model("gemma-3-270m", local=True, n_ctx=N_CTX, n_threads=args.threads)
        warm_env = {**env, "LOCALCHAT_HOST": f"127.0.0.1:{port}"}
        timed_ask(warm_env)  # loads the model in the server: later asks find it warm
        stream_tok_s(base, 8)
        asyncio.run(concurrent_round(llama_base, "gemma", 2, 4))
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", file=sys.stderr)
            rows["cold"].append(timed_ask({**env, "LOCALCHAT_HOST": "off"}, "--local"))
            rows["warm"].append(timed_ask(warm_env))
            rows["inproc"].append(in_process_tok_s(model, args.tokens))
            rows["served"].append(stream_tok_s(base, args.tokens))
            rows["ours"].append(
                asyncio.run(concurrent_round(base, "gemma-3-270m", args.clients, 32))
            )
            rows["llama"].append(
                asyncio.run(concurrent_round(llama_base, "gemma", args.clients, 32))
            )
        model.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    report(rows, args)


def report(rows: dict[str, list[Any]], args: argparse.Namespace) -> None:
    med = statistics.median

    def field(name: str, key: str) -> float:
        return med(r[key] for r in rows[name])

    result = {
        "runs": args.runs, "threads": args.threads, "clients": args.clients, "n_ctx": N_CTX,
        "ask_cold_wall_s": field("cold", "wall_s"), "ask_cold_first_byte_s": field("cold", "first_byte_s"),
        "ask_warm_wall_s": field("warm", "wall_s"), "ask_warm_first_byte_s": field("warm", "first_byte_s"),
        "decode_in_process_tok_s": med(rows["inproc"]), "decode_served_tok_s": med(rows["served"]),
        "concurrent_localchat": {k: field("ours", k) for k in ("tokens_per_s", "p50_s", "p95_s")},
        "concurrent_llama_cpp_server": {k: field("llama", k) for k in ("tokens_per_s", "p50_s", "p95_s")},
        "raw": rows,
    }  # fmt: skip
    result["decode_ratio"] = result["decode_served_tok_s"] / result["decode_in_process_tok_s"]
    ours, theirs = result["concurrent_localchat"], result["concurrent_llama_cpp_server"]
    lines = [
        f"{'measure (median of ' + str(args.runs) + ')':<44}{'localchat':>12}{'baseline':>12}{'ratio':>8}",
        f"{'(a) ask wall s: warm server vs cold --local':<44}{result['ask_warm_wall_s']:>12.2f}{result['ask_cold_wall_s']:>12.2f}{result['ask_warm_wall_s'] / result['ask_cold_wall_s']:>8.2f}",
        f"{'(a) ask first byte s: warm vs cold':<44}{result['ask_warm_first_byte_s']:>12.2f}{result['ask_cold_first_byte_s']:>12.2f}{result['ask_warm_first_byte_s'] / result['ask_cold_first_byte_s']:>8.2f}",
        f"{'(b) decode tok/s: served vs in-process':<44}{result['decode_served_tok_s']:>12.1f}{result['decode_in_process_tok_s']:>12.1f}{result['decode_ratio']:>8.3f}",
        f"{f'(c) {args.clients} clients tok/s vs llama_cpp.server':<44}{ours['tokens_per_s']:>12.1f}{theirs['tokens_per_s']:>12.1f}{ours['tokens_per_s'] / theirs['tokens_per_s']:>8.2f}",
        f"{'(c) p50 latency s':<44}{ours['p50_s']:>12.2f}{theirs['p50_s']:>12.2f}{ours['p50_s'] / theirs['p50_s']:>8.2f}",
        f"{'(c) p95 latency s':<44}{ours['p95_s']:>12.2f}{theirs['p95_s']:>12.2f}{ours['p95_s'] / theirs['p95_s']:>8.2f}",
    ]  # fmt: skip
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
