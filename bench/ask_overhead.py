"""What localchat adds on top of llama-cpp-python: decode speed and start-up time.

Runs, alternating, in one process tree on the same model, prompt, seed and settings:
  * ``localchat ask --json`` (a subprocess, as a user runs it), and
  * a bare llama-cpp-python script doing the same generation (``create_completion``, stream)
    at every thread count from 1 to the physical cores; the best is the baseline,
and times ``localchat ask --help`` against ``python -c "import llama_cpp"``.

Targets (issue 2): decode >= 0.98x bare; start-up overhead <= 150 ms over importing llama_cpp.
Prints a table and writes bench/results/ask_overhead.json.  Asserts nothing.

    python bench/ask_overhead.py [--runs 3] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "ask_overhead.json"
PROMPT = "Write a long story about a lighthouse keeper and the sea."
N_CTX = 2048

BARE_SCRIPT = r"""
import json, sys, time, llama_cpp, ctypes
sink = llama_cpp.llama_log_callback(lambda level, text, data: None)
llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))
path, prompt, n_tokens, n_ctx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
threads = int(sys.argv[5])
started = time.perf_counter()
llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_gpu_layers=0, verbose=False,
                      n_threads=threads, n_threads_batch=threads)
loaded = time.perf_counter()
first = last = None
count = 0
for chunk in llm.create_completion(prompt, max_tokens=n_tokens, temperature=0.0, top_p=0.95,
                                   top_k=40, min_p=0.05, seed=7, stream=True):
    last = time.perf_counter()
    first = first or last
    count += 1
print(json.dumps({"completion_tokens": count, "decode_tokens_per_s": (count - 1) / (last - first),
                  "load_s": loaded - started, "time_to_first_token_s": first - loaded}))
"""


def rendered_prompt(model_path: Path) -> str:
    """The exact text localchat feeds the model, so both sides decode the same tokens."""
    from localchat.catalog import load_catalog
    from localchat.formats import resolve_format
    from localchat.gguf import read_gguf_metadata
    from localchat.types import Message

    fmt = resolve_format(load_catalog().get("gemma-3-270m"), read_gguf_metadata(model_path))
    return fmt.prompt([Message("user", PROMPT)]).text


def run_localchat(model_path: Path, n_tokens: int, home: str) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "localchat", "ask", "--json", "-m", str(model_path), "--ctx",
         str(N_CTX), "--temperature", "0", "--seed", "7", "--max-tokens", str(n_tokens), PROMPT],
        capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "LOCALCHAT_HOME": home},
    )  # fmt: skip
    payload = json.loads(out.stdout)
    payload["wall_s"] = time.perf_counter() - start
    return payload


def run_bare(model_path: Path, prompt: str, n_tokens: int, threads: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", BARE_SCRIPT, str(model_path), prompt, str(n_tokens), str(N_CTX),
         str(threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    payload["wall_s"] = time.perf_counter() - start
    return payload


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def time_command(argv: list[str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    from localchat.catalog import load_catalog
    from localchat.store.local import pip_model_file

    entry = load_catalog().get("gemma-3-270m")
    model_path = pip_model_file(entry.name, entry.pip)  # under localchat's data dir, not ~/.cache
    prompt = rendered_prompt(model_path)
    localchat_runs: list[dict] = []
    # the baseline is bare llama-cpp-python at its best thread count (1..physical cores):
    # its own default (cpu_count() // 2) would hide a thread choice as poor as its own
    bare_by_threads: dict[int, list[dict]] = {t: [] for t in range(1, physical_cores() + 1)}
    with tempfile.TemporaryDirectory() as home:
        # Equal work on both sides: the prompt makes gemma loop, and localchat's repetition
        # guard (engine/repetition.py, ~1 us per token) would end its reply early.
        (Path(home) / "config").mkdir()
        (Path(home) / "config" / "settings.toml").write_text("repetition_guard = false\n")
        for _ in range(args.runs):  # alternate so drift hits both sides alike
            for threads, runs in bare_by_threads.items():
                runs.append(run_bare(model_path, prompt, args.tokens, threads))
            localchat_runs.append(run_localchat(model_path, args.tokens, home))
    best_threads = max(
        bare_by_threads,
        key=lambda t: statistics.median(r["decode_tokens_per_s"] for r in bare_by_threads[t]),
    )
    bare_runs = bare_by_threads[best_threads]
    startup_runs = max(5, args.runs * 2)
    startup = {
        "python -c pass": time_command([sys.executable, "-c", "pass"], startup_runs),
        "import llama_cpp": time_command([sys.executable, "-c", "import llama_cpp"], startup_runs),
        "localchat ask --help": time_command(
            [sys.executable, "-m", "localchat", "ask", "--help"], startup_runs
        ),
        "localchat --help": time_command(
            [sys.executable, "-m", "localchat", "--help"], startup_runs
        ),
    }
    report = summarise(localchat_runs, bare_runs, startup, args)
    report["bare_threads"] = best_threads
    report["bare_by_threads"] = {
        t: statistics.median(r["decode_tokens_per_s"] for r in runs)
        for t, runs in bare_by_threads.items()
    }
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS}")


def summarise(localchat_runs: list, bare_runs: list, startup: dict, args) -> dict:
    def median(runs: list, key: str) -> float:
        return statistics.median(run[key] for run in runs)

    decode_ratio = median(localchat_runs, "decode_tokens_per_s") / median(
        bare_runs, "decode_tokens_per_s"
    )
    return {
        "model": "gemma-3-270m Q4_K_M (CPU)",
        "runs": args.runs,
        "max_tokens": args.tokens,
        "n_ctx": N_CTX,
        "localchat": {
            k: median(localchat_runs, k)
            for k in ("decode_tokens_per_s", "wall_s", "completion_tokens")
        },
        "bare": {
            k: median(bare_runs, k) for k in ("decode_tokens_per_s", "wall_s", "completion_tokens")
        },
        "decode_ratio": decode_ratio,
        "startup_s": startup,
        "startup_overhead_over_llama_cpp_s": startup["localchat ask --help"]
        - startup["import llama_cpp"],
        "targets": {"decode_ratio_min": 0.98, "startup_overhead_max_s": 0.150},
    }


def print_table(report: dict) -> None:
    lc, bare = report["localchat"], report["bare"]
    bare_head = f"bare, {report['bare_threads']} thr"
    print(f"{'':28}{'localchat ask':>16}{bare_head:>16}{'ratio':>8}")
    print(
        f"{'decode tok/s (median)':28}{lc['decode_tokens_per_s']:>16.2f}{bare['decode_tokens_per_s']:>16.2f}"
        f"{report['decode_ratio']:>8.3f}"
    )
    print(
        f"{'wall s (median)':28}{lc['wall_s']:>16.2f}{bare['wall_s']:>16.2f}{lc['wall_s'] / bare['wall_s']:>8.3f}"
    )
    print(
        f"{'completion tokens':28}{lc['completion_tokens']:>16.0f}{bare['completion_tokens']:>16.0f}"
    )
    print()
    for name, seconds in report["startup_s"].items():
        print(f"{name:28}{seconds * 1000:>10.0f} ms")
    print(
        f"{'ask --help over llama_cpp':28}{report['startup_overhead_over_llama_cpp_s'] * 1000:>10.0f} ms"
        f"   (target <= 150 ms)"
    )


if __name__ == "__main__":
    main()
