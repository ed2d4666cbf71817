"""Embeddings per second: localchat's embedding engine vs llama.cpp's own server (xllamacpp).

Both sides load the same GGUF with the same threads, a 512-token batch and flash attention
(localchat plans it on for embedding models, on the CPU too), and embed
the same inputs (sentences of 8 to 60 words, fixed seed), unit-length vectors, in
requests of 1, 16 and 64 inputs, in alternating rounds (so drift on a shared machine
hits both alike):

* native: ``xllamacpp.Server`` (llama-server with ``--embeddings``: one slot per input,
  64 slots, their tokens batched together) in a child process, ``handle_embeddings``;
* localchat: ``services.embed_inputs`` on the model opened in this process (the engine
  and the services; the HTTP layer adds the same JSON work to both).

The default model is a MiniLM-L6-shaped BERT (6 layers, 384 wide, 512 tokens, mean
pooling; all-MiniLM-L6-v2's shape) with random F32 weights, written here: the speed of a
BERT does not depend on its weights.  ``--model`` takes a real embedding GGUF.  Reported per request size: inputs/s
and tokens/s of each side and their ratio.  Prints a table, writes
bench/results/embeddings.json; asserts nothing.

    python bench/embeddings.py [--model PATH] [--inputs 128] [--batches 1,16,64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "embeddings.json"
BATCH_TOKENS = 512

NATIVE_CHILD = r"""
import json, sys, time
import xllamacpp as x
cfg = json.loads(sys.argv[1])
p = x.CommonParams()
p.model.path = cfg["model"]
p.embedding, p.n_parallel, p.kv_unified = True, cfg["parallel"], True
p.n_ctx, p.n_batch, p.n_ubatch = cfg["batch_tokens"], cfg["batch_tokens"], cfg["batch_tokens"]
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = cfg["threads"]
p.flash_attn_type = x.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED  # as localchat plans
server = x.Server(p)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    began, tokens = time.perf_counter(), 0
    for batch in job["batches"]:
        reply = server.handle_embeddings({"input": batch, "model": "bench"})
        if "data" not in reply:
            print(json.dumps({"error": reply}), flush=True)
            sys.exit(1)
        tokens += reply["usage"]["prompt_tokens"]
    print(json.dumps({"wall_s": time.perf_counter() - began, "tokens": tokens}), flush=True)
"""


class Native:
    """The xllamacpp server in a child process (it carries its own ggml)."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-c", NATIVE_CHILD, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._read()

    def run(self, batches: list[list[str]]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"batches": batches}) + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the native server exited; see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the native server refused a request: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


class Localchat:
    """The model opened in this process, embedded through the services."""

    def __init__(self, config: dict[str, Any]) -> None:
        from localchat import services  # after LOCALCHAT_HOME is set

        self._services = services
        self._model = services.open_model(
            config["model"], local=True, allow_download=False, n_threads=config["threads"]
        )

    def run(self, batches: list[list[str]]) -> dict[str, Any]:
        began, tokens = time.perf_counter(), 0
        for batch in batches:
            tokens += self._services.embed_inputs(self._model, batch).prompt_tokens
        return {"wall_s": time.perf_counter() - began, "tokens": tokens}

    def close(self) -> None:
        self._model.close()


def make_inputs(n_inputs: int, seed: int = 7) -> list[str]:
    """Sentences of 8 to 60 words the tiny vocabulary tokenizes without [UNK]s."""
    from tests.fixtures.embed_gguf import WORDS

    rng = random.Random(seed)
    words = [*WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    return [" ".join(rng.choices(words, k=rng.randint(8, 60))) for _ in range(n_inputs)]


def batched(inputs: list[str], size: int) -> list[list[str]]:
    return [inputs[i : i + size] for i in range(0, len(inputs), size)]


def measure(args: argparse.Namespace, config: dict[str, Any], log: Path) -> dict[str, Any]:
    inputs = make_inputs(args.inputs)
    native = Native({**config, "parallel": max(args.batches)}, log)
    ours = Localchat(config)
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {"native": {}, "localchat": {}}
    try:
        for side in (native, ours):  # untimed: page the weights in, build the graphs
            side.run(batched(inputs[:64], 16))
        for round_index in range(args.rounds):
            for size in args.batches:
                sides = [("native", native), ("localchat", ours)]
                for name, side in sides if round_index % 2 == 0 else sides[::-1]:
                    runs[name].setdefault(size, []).append(side.run(batched(inputs, size)))
    finally:
        native.close()
        ours.close()
    return {
        str(size): {name: summarise(runs[name][size], len(inputs)) for name in runs}
        for size in args.batches
    }


def summarise(runs: list[dict[str, Any]], n_inputs: int) -> dict[str, float]:
    wall_s = statistics.median(run["wall_s"] for run in runs)
    tokens = runs[0]["tokens"]
    return {
        "inputs_per_s": n_inputs / wall_s,
        "tokens_per_s": tokens / wall_s,
        "wall_s": wall_s,
        "tokens": tokens,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"{'batch':>6}{'native in/s':>13}{'ours in/s':>11}{'ratio':>7}"
          f"{'native tok/s':>14}{'ours tok/s':>12}{'tokens':>8}")  # fmt: skip
    for size, sides in report["by_batch"].items():
        nat, our = sides["native"], sides["localchat"]
        print(f"{size:>6}{nat['inputs_per_s']:>13.1f}{our['inputs_per_s']:>11.1f}"
              f"{our['inputs_per_s'] / nat['inputs_per_s']:>7.2f}"
              f"{nat['tokens_per_s']:>14.0f}{our['tokens_per_s']:>12.0f}"
              f"{our['tokens']:>8}")  # fmt: skip


def default_model(folder: Path) -> Path:
    """A MiniLM-L6-shaped BERT with random weights (about 45 MB of F32)."""
    from tests.fixtures.embed_gguf import BertSpec, write_bert_gguf

    spec = BertSpec(n_layers=6, n_embd=384, n_head=12, n_ff=1536, n_ctx_train=BATCH_TOKENS)
    return write_bert_gguf(folder / "bench-minilm-l6-F32.gguf", spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an embedding GGUF (default: written here)")
    parser.add_argument("--inputs", type=int, default=128, help="inputs per measurement")
    parser.add_argument("--batches", default="1,16,64", help="inputs per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: the physical cores")
    parser.add_argument("--quick", action="store_true", help="32 inputs, 1 round")
    args = parser.parse_args()
    args.batches = [int(n) for n in args.batches.split(",")]
    if args.quick:
        args.inputs, args.rounds = 32, 1
    import psutil

    threads = args.threads or psutil.cpu_count(logical=False) or 1
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOCALCHAT_HOME"] = home  # llama.log, the probe's record, the pull cache
        model = args.model or default_model(Path(home))
        config = {"model": str(model), "threads": threads, "batch_tokens": BATCH_TOKENS}
        report: dict[str, Any] = {
            "model": model.name,
            "threads": threads,
            "inputs": args.inputs,
            "rounds": args.rounds,
            "batch_tokens": BATCH_TOKENS,
            "by_batch": measure(args, config, Path(home) / "native.log"),
        }
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS} (a shared CPU: compare ratios, not absolute figures)")


if __name__ == "__main__":
    main()
