"""Concurrent streams: llama.cpp's own server (xllamacpp) vs localchat with N slots, at
two layers: the engine in-process, and the HTTP servers.

Both sides load the same GGUF with the same slots, unified KV cache (full-size for
sliding-window layers), context per slot, threads, flash attention (off unless
``--flash-attn``) and token budget, and decode greedily a fixed number of tokens per stream
for 1, 2, 4 and 8 concurrent streams, in alternating rounds (so drift on a shared
machine hits both alike).

Engine layer (``--layer engine``):

* native: ``xllamacpp.Server`` (llama-server's slots, in-process C++) in a child process
  — it carries its own ggml — fed by threads calling ``handle_completions``;
* localchat: ``engine.llama.LlamaBackend`` in this process, a thread per stream
  (end-of-generation ignored on both sides).

HTTP layer (``--layer http``, ``bench/concurrency_http.py``): xllamacpp's HTTP server
against ``localchat serve --parallel N``, each a separate process, both driven by one
asyncio client streaming chat completions (SSE).

Reported per layer and concurrency: aggregate tok/s (all tokens / wall time), per-stream
decode tok/s, p50 / p95 time to first token.  ``--single`` adds the single-stream check
against bare llama-cpp-python (``Llama.generate``, a child process) at each thread
count up to the physical cores; its best is the baseline.
Targets: aggregate >= 0.9x native at every concurrency, single stream >= 0.97x native
(both layers), single stream >= 0.98x bare llama-cpp-python.  Prints tables, writes
bench/results/concurrency.json; asserts nothing.

    python bench/concurrency.py [--quick] [--layer both] [--streams 1,2,4,8] [--tokens 96]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "concurrency.json"
from bench.concurrency_http import NATIVE_PARAMS  # noqa: E402 (after the sys.path line)

HTTP_MODULES = ("xllamacpp", "uvicorn", "starlette", "sse_starlette")  # both servers' needs
TOPICS = ["a dragon", "the sea", "a lighthouse", "a robot", "the moon", "a forest", "a city",
          "a river", "a mountain", "a storm"]  # fmt: skip

NATIVE_CHILD = (
    NATIVE_PARAMS
    + r"""
import threading, time
server = x.Server(p)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    out = [None] * len(job["prompts"])
    def run(i, prompt):
        start, times, usage = time.perf_counter(), [], {}
        def chunk(c):
            if c.get("usage"): usage.update(c["usage"])
            elif c.get("choices") and c["choices"][0].get("finish_reason") is None:
                times.append(time.perf_counter())
        server.handle_completions({"prompt": prompt, "n_predict": job["tokens"], "temperature": 0,
                                   "ignore_eos": True, "stream": True}, chunk)
        out[i] = {"start": start, "times": times, "tokens": usage.get("completion_tokens", len(times))}
    began = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(job["prompts"])]
    [t.start() for t in threads]; [t.join() for t in threads]
    print(json.dumps({"wall_s": time.perf_counter() - began, "streams": out}), flush=True)
"""
)

BARE_CHILD = r"""
import ctypes, json, sys, time, llama_cpp
sink = llama_cpp.llama_log_callback(lambda level, text, data: None)
llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))
cfg = json.loads(sys.argv[1])
llm = llama_cpp.Llama(model_path=cfg["model"], n_ctx=cfg["ctx_per_seq"], n_gpu_layers=0,
                      n_threads=cfg["threads"], n_threads_batch=cfg["threads"],
                      flash_attn=cfg["flash_attn"], verbose=False)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    start, times = time.perf_counter(), []
    tokens = llm.tokenize(job["prompts"][0].encode(), add_bos=True, special=True)
    for _, _token in zip(range(job["tokens"]), llm.generate(tokens, temp=0.0, reset=True)):
        times.append(time.perf_counter())
    print(json.dumps({"wall_s": time.perf_counter() - start,
                      "streams": [{"start": start, "times": times, "tokens": len(times)}]}), flush=True)
"""


class Child:
    """A long-lived measuring process: one JSON job per line in, one result per line out."""

    def __init__(self, script: str, config: dict[str, Any], log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )  # fmt: skip
        self._read()  # {"ready": true}

    def run(self, prompts: list[str], tokens: int) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"prompts": prompts, "tokens": tokens}) + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"a measuring child died; see {self._log.name}")
        return dict(json.loads(line))

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


class Engine:
    """localchat's llama.cpp backend in this process, measured like the children."""

    def __init__(self, config: dict[str, Any], slots: int) -> None:
        from localchat.engine.llama import LlamaBackend
        from localchat.engine.settings import LlamaSettings

        settings = LlamaSettings(
            model_path=Path(config["model"]),
            n_ctx=slots * config["ctx_per_seq"],
            n_parallel=slots,
            n_threads=config["threads"],
            n_threads_batch=config["threads"],
            flash_attn=config["flash_attn"],
        )
        self.backend = LlamaBackend(settings)
        self.backend._is_end = lambda token, stop_ids: False  # bench only: fixed token counts

    def run(self, prompts: list[str], tokens: int) -> dict[str, Any]:
        from localchat.types import PromptSpec, SamplingParams

        sampling = SamplingParams(temperature=0.0, max_tokens=tokens, stop_on_repetition=False)
        out: list[dict[str, Any]] = [{} for _ in prompts]

        def read(index: int, prompt: str) -> None:
            start, times = time.perf_counter(), []
            stream = self.backend.stream(PromptSpec(prompt), sampling)
            for _piece in stream:
                times.append(time.perf_counter())
            ttft = stream.stats.time_to_first_token_s or 0.0
            out[index] = {"start": start, "times": times, "tokens": stream.stats.completion_tokens,
                          "ttft_s": ttft, "decode_tok_s": stream.stats.decode_tokens_per_s}  # fmt: skip

        began = time.perf_counter()
        threads = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(prompts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"wall_s": time.perf_counter() - began, "streams": out}

    def close(self) -> None:
        self.backend.close()


def summarise(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over rounds of aggregate tok/s and per-stream decode tok/s; TTFT percentiles."""
    aggregate, per_stream, ttfts = [], [], []
    for result in rounds:
        streams = result["streams"]
        aggregate.append(sum(s["tokens"] for s in streams) / result["wall_s"])
        for s in streams:
            times = s["times"]
            ttfts.append(s.get("ttft_s") or (times[0] - s["start"] if times else 0.0))
            decode = s.get("decode_tok_s")
            if decode is None and len(times) > 1 and times[-1] > times[0]:
                decode = (s["tokens"] - 1) / (times[-1] - times[0])
            if decode:
                per_stream.append(decode)
    ttfts.sort()
    return {
        "aggregate_tok_s": statistics.median(aggregate),
        "per_stream_tok_s": statistics.median(per_stream) if per_stream else 0.0,
        "ttft_p50_s": ttfts[len(ttfts) // 2],
        "ttft_p95_s": ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))],
    }


def prompts_for(n_streams: int, round_index: int) -> list[str]:
    """Distinct prompts per stream and round (no prompt-cache advantage for either side)."""
    return [f"Round {round_index}. Write a long story about {TOPICS[i % len(TOPICS)]}."
            for i in range(n_streams)]  # fmt: skip


def measure(args: argparse.Namespace, config: dict[str, Any], log: Path) -> dict[str, Any]:
    """The engine layer: native slots in a child against ``LlamaBackend`` here."""
    slots = max(args.streams)
    native = Child(NATIVE_CHILD, {**config, "slots": slots}, log)
    try:
        engine = Engine(config, slots)
    except BaseException:
        native.close()
        raise
    return alternate(args, native, engine, prompts_for)


def measure_http(
    args: argparse.Namespace, config: dict[str, Any], log: Path, home: Path
) -> dict[str, Any]:
    """The HTTP layer: xllamacpp's server against ``localchat serve``, both children."""
    from bench.concurrency_http import counting_prompts, localchat_side, native_side

    slots = max(args.streams)
    native = native_side(config, slots, log)
    try:
        ours = localchat_side(config, slots, home / "serve-home", log)
    except BaseException:
        native.close()
        raise
    return alternate(args, native, ours, counting_prompts)


def alternate(args: argparse.Namespace, native: Any, ours: Any, prompts: Any) -> dict[str, Any]:
    """Rounds at each concurrency, the sides' order swapped every round; closes both."""
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {"native": {}, "localchat": {}}
    try:
        for side in (native, ours):  # untimed: first decodes page weights in, build graphs
            side.run(prompts(2, 99), 4)
        for round_index in range(args.rounds):
            for n in args.streams:
                sides = [("native", native), ("localchat", ours)]
                for name, side in sides if round_index % 2 == 0 else sides[::-1]:
                    result = side.run(prompts(n, round_index), args.tokens)
                    raw[name].setdefault(n, []).append(result)
    finally:
        native.close()
        ours.close()
    return {str(n): {name: summarise(raw[name][n]) for name in raw} for n in args.streams}


def measure_single(args: argparse.Namespace, config: dict[str, Any], log: Path) -> dict[str, Any]:
    """Single stream, localchat (1 slot) vs bare llama-cpp-python at each thread count."""
    import psutil

    cores = psutil.cpu_count(logical=False) or 1
    by_threads: dict[int, dict[str, Any]] = {}
    for threads in [cores] if args.quick else range(1, cores + 1):
        cfg = {**config, "threads": threads}
        bare, engine = Child(BARE_CHILD, cfg, log), Engine(cfg, 1)
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "localchat": []}
        try:
            for side in (bare, engine):
                side.run(["Warm up."], 4)
            for round_index in range(args.rounds):
                prompts = prompts_for(1, round_index)
                for name, side in [("bare", bare), ("localchat", engine)][
                    :: 1 - 2 * (round_index % 2)
                ]:
                    runs[name].append(side.run(prompts, args.tokens))
        finally:
            bare.close()
            engine.close()
        by_threads[threads] = {name: summarise(r) for name, r in runs.items()}
    best = max(by_threads, key=lambda t: by_threads[t]["bare"]["per_stream_tok_s"])
    return {"by_threads": by_threads, "bare_best_threads": best}


def print_table(report: dict[str, Any]) -> None:
    for layer, title in (("concurrency", "engine, in-process"), ("http", "HTTP servers")):
        if layer in report:
            print(f"\n{title}:")
            print_layer(report[layer])
    single = report.get("single")
    if single:
        best = single["by_threads"][single["bare_best_threads"]]
        ratio = best["localchat"]["per_stream_tok_s"] / best["bare"]["per_stream_tok_s"]
        print(f"\nsingle stream, {single['bare_best_threads']} threads: localchat "
              f"{best['localchat']['per_stream_tok_s']:.1f} tok/s, bare llama-cpp-python "
              f"{best['bare']['per_stream_tok_s']:.1f} tok/s, ratio {ratio:.3f}")  # fmt: skip


def print_layer(layer: dict[str, Any]) -> None:
    print(f"{'streams':>8}{'native agg':>12}{'ours agg':>10}{'ratio':>7}{'native/str':>12}"
          f"{'ours/str':>10}{'ratio':>7}{'native ttft p50/p95':>22}{'ours ttft p50/p95':>20}")  # fmt: skip
    for n, sides in layer.items():
        nat, our = sides["native"], sides["localchat"]
        print(f"{n:>8}{nat['aggregate_tok_s']:>12.1f}{our['aggregate_tok_s']:>10.1f}"
              f"{our['aggregate_tok_s'] / nat['aggregate_tok_s']:>7.2f}"
              f"{nat['per_stream_tok_s']:>12.1f}{our['per_stream_tok_s']:>10.1f}"
              f"{our['per_stream_tok_s'] / max(nat['per_stream_tok_s'], 1e-9):>7.2f}"
              f"{nat['ttft_p50_s']:>11.3f}/{nat['ttft_p95_s']:<10.3f}"
              f"{our['ttft_p50_s']:>9.3f}/{our['ttft_p95_s']:<10.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GGUF (default: the pip gemma-3-270m)")
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ctx-per-seq", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="0: the physical cores")
    parser.add_argument("--flash-attn", action="store_true", help="both sides (default: off)")
    parser.add_argument("--single", action="store_true", help="also vs bare llama-cpp-python")
    parser.add_argument("--quick", action="store_true", help="1,2,4 streams, 32 tokens, 1 round")
    parser.add_argument("--layer", choices=("engine", "http", "both"), default="both")
    args = parser.parse_args()
    args.streams = [int(n) for n in args.streams.split(",")]
    if args.quick:
        args.streams, args.tokens, args.rounds = [n for n in args.streams if n <= 4], 32, 1
    import psutil

    threads = args.threads or psutil.cpu_count(logical=False) or 1
    model = args.model or _pip_model()
    config = {
        "model": str(model),
        "ctx_per_seq": args.ctx_per_seq,
        "threads": threads,
        "flash_attn": args.flash_attn,
    }
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOCALCHAT_HOME"] = home  # llama.log and the probe's record stay here
        log = Path(home) / "children.log"
        report: dict[str, Any] = {
            "model": model.name,
            "threads": threads,
            "flash_attn": args.flash_attn,
            "tokens_per_stream": args.tokens,
            "ctx_per_seq": args.ctx_per_seq,
            "rounds": args.rounds,
            "targets": {
                "aggregate_vs_native_min": 0.9,
                "single_vs_native_min": 0.97,
                "single_vs_bare_min": 0.98,
            },
        }
        if args.layer in ("engine", "both"):
            report["concurrency"] = measure(args, config, log)
        missing = [m for m in HTTP_MODULES if importlib.util.find_spec(m) is None]
        if args.layer in ("http", "both") and missing:
            print(f"HTTP layer skipped: {', '.join(missing)} not installed", file=sys.stderr)
        elif args.layer in ("http", "both"):
            report["http"] = measure_http(args, config, log, Path(home))
        if args.single:
            report["single"] = measure_single(args, config, log)
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS} (a shared CPU: compare ratios, not absolute figures)")


def _pip_model() -> Path:
    from localchat.catalog import load_catalog
    from localchat.store.local import pip_model_file

    entry = load_catalog().get("gemma-3-270m")
    assert entry is not None and entry.pip is not None
    path = pip_model_file(entry.name, entry.pip)
    assert path is not None
    return path


if __name__ == "__main__":
    main()
