"""The HTTP layer of ``bench/concurrency.py``: llama.cpp's native server against
``localchat serve``, each a separate process, driven by the same streaming client.

* native: ``xllamacpp.Server`` with its HTTP listener (llama-server's code: slots,
  unified KV cache, full-size sliding-window cache), in a child process;
* localchat: ``python -m localchat serve --parallel N`` in a child process, its
  settings.toml naming the GGUF as the default model and the context per slot.

Both get the same GGUF, slots, context per slot, threads, batch (512) and token budget
(``max_tokens``; the native side also ``ignore_eos``, and the prompts are counting,
which the base model continues to the budget).  The client streams chat completions
(SSE) with ``stream_options.include_usage`` and times every chunk: time to first token
from the request, per-stream decode tok/s from its first to its last chunk, aggregate
tok/s as all completion tokens over the round's wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# The native server's parameters, matched to localchat's (both child scripts start with it).
NATIVE_PARAMS = r"""
import json, sys
import xllamacpp as x
cfg = json.loads(sys.argv[1])
p = x.CommonParams()
p.model.path = cfg["model"]
p.n_parallel, p.kv_unified = cfg["slots"], True
p.n_ctx, p.n_batch, p.n_ubatch = cfg["slots"] * cfg["ctx_per_seq"], 512, 512
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = cfg["threads"]
p.swa_full = True  # localchat's (and llama.cpp's context) default; the server's is False
fa = x.llama_flash_attn_type
p.flash_attn_type = fa.LLAMA_FLASH_ATTN_TYPE_ENABLED if cfg["flash_attn"] else fa.LLAMA_FLASH_ATTN_TYPE_DISABLED
"""

NATIVE_HTTP_CHILD = (
    NATIVE_PARAMS
    + r"""
p.port, p.hostnames = cfg["port"], ["127.0.0.1"]
server = x.Server(p)
print(json.dumps({"ready": server.listening_address}), flush=True)
sys.stdin.read()  # serve until the parent closes stdin
"""
)
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpSide:
    """One server process and how to ask it for a streamed chat completion."""

    def __init__(
        self, name: str, process: subprocess.Popen[str], base_url: str, body: dict[str, Any]
    ) -> None:
        self.name, self.process, self.base_url, self.body = name, process, base_url, body
        _wait_ready(self)

    def run(self, prompts: list[str], tokens: int) -> dict[str, Any]:
        return asyncio.run(_round(self, prompts, tokens))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def native_side(config: dict[str, Any], slots: int, log: Path) -> HttpSide:
    port = free_port()
    child_config = {**config, "slots": slots, "port": port}
    process = subprocess.Popen(
        [sys.executable, "-c", NATIVE_HTTP_CHILD, json.dumps(child_config)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log.open("ab"), text=True,
    )  # fmt: skip
    body = {"model": "native", "ignore_eos": True}
    return HttpSide("native", process, f"http://127.0.0.1:{port}", body)


def localchat_side(config: dict[str, Any], slots: int, home: Path, log: Path) -> HttpSide:
    """``localchat serve`` with this GGUF as its default model (a path is never a request's
    model name: settings.toml's ``default_model`` may be one)."""
    port = free_port()
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "settings.toml").write_text(
        f"default_model = {json.dumps(config['model'])}\ncontext_size = {config['ctx_per_seq']}\n"
    )
    env = {**os.environ, "LOCALCHAT_HOME": str(home), "LOCALCHAT_HOST": "off",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    command = [sys.executable, "-m", "localchat", "serve", "--port", str(port), "--quiet",
               "--no-pull", "--threads", str(config["threads"]), "--parallel", str(slots)]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=log.open("ab"), text=True,
    )  # fmt: skip
    return HttpSide("localchat", process, f"http://127.0.0.1:{port}", {"model": "default"})


def _wait_ready(side: HttpSide) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if side.process.poll() is not None:
            raise RuntimeError(f"the {side.name} server exited with {side.process.returncode}")
        try:
            if httpx.get(f"{side.base_url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the {side.name} server was not ready in {START_TIMEOUT_S:.0f} s")


async def _round(side: HttpSide, prompts: list[str], tokens: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=len(prompts) + 2)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        began = time.perf_counter()
        streams = await asyncio.gather(*(_stream(client, side, p, tokens) for p in prompts))
    return {"wall_s": time.perf_counter() - began, "streams": list(streams)}


async def _stream(
    client: httpx.AsyncClient, side: HttpSide, prompt: str, tokens: int
) -> dict[str, Any]:
    body = {
        **side.body,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start, times, usage = time.perf_counter(), [], {}
    url = f"{side.base_url}/v1/chat/completions"
    async with client.stream("POST", url, json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            usage = chunk.get("usage") or usage
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices") or ()):
                times.append(time.perf_counter())
    return {"start": start, "times": times, "tokens": usage.get("completion_tokens", len(times))}


def counting_prompts(n_streams: int, round_index: int) -> list[str]:
    """Distinct counting prompts (no prompt-cache advantage; the base model counts on to
    the budget on both sides)."""
    prompts = []
    for stream in range(n_streams):
        first = 1000 * (round_index * 16 + stream + 1)
        numbers = ", ".join(str(first + i) for i in range(6))
        prompts.append(f"Continue counting: {numbers},")
    return prompts
