"""AWQ backend (transformers + GPTQModel, CPU torch) against the GGUF backend (llama.cpp)
on the same tiny Llama: quantized both ways from one float model (AWQ 4-bit g128, GGUF Q4_0).

Each run is a fresh process (``--child``) that loads the model through
``localchat.engine.load_backend`` and streams the same prompt greedily; runs alternate
AWQ, GGUF, AWQ, GGUF, ... (for each thread count in ``--threads``) so load from other
processes on the machine hits both alike.  Each backend is scored at its best thread
count (the strongest baseline; torch's CPU kernels suffer badly from oversubscribed
cores, llama.cpp much less).  End-of-text is
not a stop here (the tiny model would answer in 5 tokens), so decode runs ``--tokens``
tokens: the one bench-only patch.  Prints a table, writes bench/results/awq.json,
asserts nothing.  Run it under ``flock /tmp/localchat-bench.lock``.

    python bench/awq.py [--runs 3] [--tokens 128] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "awq.json"
QUESTION = "<|user|>\nwhat color is the sky</s>\n<|assistant|>\nthe sky is blue.</s>\n"
PROMPT = "<s>" + QUESTION * 8 + "<|user|>\nname a fruit</s>\n<|assistant|>\n"  # ~100 tokens


def child(kind: str, path: Path, tokens: int, threads: int) -> dict:
    """One load + one generation, timed inside this process."""
    started = time.perf_counter()
    from localchat.engine import load_backend
    from localchat.engine.settings import AwqSettings, LlamaSettings
    from localchat.types import PromptSpec, SamplingParams

    if kind == "awq":
        from localchat.engine.awq.loader import import_torch_stack

        torch, _ = import_torch_stack()
        torch.set_num_threads(threads)
        settings = AwqSettings(path, n_ctx=512, n_threads=threads)
    else:
        from localchat.llamacpp import library

        _ = library().native  # load llama.cpp before the clock starts
        settings = LlamaSettings(path, n_ctx=512, n_threads=threads)
    imported = time.perf_counter()
    backend = load_backend(settings)
    loaded = time.perf_counter()
    if kind == "awq":
        backend._end_ids = set()  # bench only: decode a fixed number of tokens
    else:
        backend._is_end = lambda token, stop_ids: False
    prompt = PromptSpec(PROMPT, has_bos=True, render_special_tokens=True)
    text = "".join(backend.stream(prompt, SamplingParams(temperature=0.0, max_tokens=tokens)))
    stats = backend.last_stats
    backend.close()
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "ttft_s": stats.time_to_first_token_s,
        "decode_tok_s": stats.decode_tokens_per_s,
        "text_head": text[:40],
    }


def build_models() -> tuple[Path, Path]:
    from tests.fixtures.awq_models import build_tiny, cache_key
    from tests.fixtures.tiny_gguf import write_tiny_gguf

    root = ROOT / ".pytest_cache" / "d" / "awq-tiny" / cache_key()
    float_dir, awq_dir = build_tiny("llama", root)
    gguf_path = root / "llama" / "tiny-llama-Q4_0.gguf"
    if not gguf_path.exists():
        write_tiny_gguf(float_dir, gguf_path, "Q4_0")
    return awq_dir, gguf_path


def run_child(kind: str, path: Path, tokens: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--path", str(path),
               "--tokens", str(tokens), "--n-threads", str(threads)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--child", choices=["awq", "gguf"])
    parser.add_argument("--path", type=Path)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--n-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.tokens, args.n_threads)))
        return
    awq_dir, gguf_path = build_models()
    thread_counts = sorted({int(t) for t in args.threads.split(",")})
    paths = {"awq": awq_dir, "gguf": gguf_path}
    runs: dict[str, list[dict]] = {f"{k}@{t}": [] for t in thread_counts for k in paths}
    for _ in range(args.runs):
        for threads in thread_counts:
            for kind, path in paths.items():
                runs[f"{kind}@{threads}"].append(run_child(kind, path, args.tokens, threads))
    keys = ("import_s", "load_s", "ttft_s", "decode_tok_s")
    medians = {k: {m: statistics.median(r[m] for r in rs) for m in keys} for k, rs in runs.items()}
    best = {
        kind: max(
            (k for k in medians if k.startswith(kind)), key=lambda k: medians[k]["decode_tok_s"]
        )
        for kind in paths
    }
    ratios = {m: medians[best["awq"]][m] / medians[best["gguf"]][m] for m in keys}
    print(f"{'backend@threads':<16}" + "".join(f"{m:>14}" for m in keys))
    for name, values in medians.items():
        mark = " *" if name in best.values() else ""
        print(f"{name + mark:<16}" + "".join(f"{values[m]:>14.4f}" for m in keys))
    print(f"{'awq/gguf (best)':<16}" + "".join(f"{ratios[m]:>13.2f}x" for m in keys))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "model": "tiny Llama (2 layers, hidden 256, vocab 512): AWQ 4-bit g128 vs GGUF Q4_0",
        "prompt_tokens": runs[best["awq"]][0]["prompt_tokens"], "tokens": args.tokens,
        "runs": runs, "medians": medians, "best_threads": best, "ratios_awq_over_gguf": ratios,
    }, indent=2))  # fmt: skip
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
