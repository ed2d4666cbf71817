"""Structured output's cost: decode speed under a 20-property JSON schema against free
decoding on the same model, and the time to turn the schema into a grammar.

In one process, on gemma-3-270m Q4_K_M (the pip model), alternating A/B ``--runs`` times:
  * free: the model continues a prose prompt (``stream_completion``), ``--tokens`` tokens;
  * schema: a chat turn whose reply must match a 20-property schema (``reply_format``),
    at most ``--tokens`` tokens (a whole reply is ~250); the sampler enforces the grammar (llamacpp/sampler.py
    draws first, checks the one token, and masks the vocabulary only when it must).
  * grammar first: the schema turn with the grammar masking the whole vocabulary before
    every draw (llama.cpp's own order; the sampler's ``sample`` swapped for that here),
    what the draw-then-check order saves.
All greedy (so all three pick the same tokens), the repetition guard off (equal work).
Compile time: the schema to GBNF in
Python (cold: first call in the process, then warm), and the time to first token of the
schema turn over the free one (llama.cpp parsing the grammar, plus the prompt).

Target (issue 18): schema decode >= 0.9x free.  Prints a table and writes
bench/results/structured.json.  Asserts nothing.

    python bench/structured.py [--runs 3] [--tokens 320] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "structured.json"
PROSE = "The old lighthouse keeper climbed the stairs every evening, and"
ASK = "Describe a fictional person in detail."
N_CTX = 2048
TARGET_RATIO = 0.9


def schema_20() -> dict[str, Any]:
    """20 properties of every kind the grammar handles: strings, bounded integers, numbers,
    booleans, an enum, a string array; all required, nothing else allowed."""
    properties: dict[str, Any] = {}
    for i in range(8):
        properties[f"text_{i}"] = {"type": "string", "maxLength": 24}
    for i in range(4):
        properties[f"count_{i}"] = {"type": "integer", "minimum": 0, "maximum": 1000}
    for i in range(3):
        properties[f"score_{i}"] = {"type": "number"}
    for i in range(2):
        properties[f"flag_{i}"] = {"type": "boolean"}
    properties["kind"] = {"enum": ["alpha", "beta", "gamma"]}
    properties["tags"] = {"type": "array", "items": {"type": "string", "maxLength": 12},
                          "maxItems": 3}  # fmt: skip
    properties["day"] = {"type": "string", "format": "date"}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def compile_times(schema: dict[str, Any]) -> dict[str, float]:
    from localchat.formats.structured import grammar_for_json_schema

    started = time.perf_counter()
    grammar = grammar_for_json_schema(schema)
    cold_s = time.perf_counter() - started
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        grammar_for_json_schema(schema)
        warm.append(time.perf_counter() - started)
    return {"cold_s": cold_s, "warm_s": statistics.median(warm), "grammar_chars": len(grammar)}


def run_free(model: Any, tokens: int) -> dict[str, float]:
    from localchat.types import SamplingParams

    sampling = SamplingParams(temperature=0.0, max_tokens=tokens, stop_on_repetition=False)
    text = "".join(model.stream_completion(PROSE, sampling))
    return _stats(model, text)


def run_schema(model: Any, tokens: int, schema: dict[str, Any]) -> dict[str, float]:
    from localchat.types import Message, ReplyFormat, SamplingParams

    sampling = SamplingParams(temperature=0.0, max_tokens=tokens, stop_on_repetition=False)
    stream = model.stream_chat([Message("user", ASK)], sampling, reply_format=ReplyFormat(schema))
    text = "".join(stream)
    result = _stats(model, text)
    result["valid_json"] = float(_is_json(text))
    return result


@contextlib.contextmanager
def grammar_first() -> Iterator[None]:
    """The sampler masks the whole vocabulary with the grammar before every draw."""
    from localchat.llamacpp import sampler as module
    from localchat.llamacpp._bindings import C

    def sample(self: Any, context: Any, index: int) -> int:
        if self._grammar is None:
            return int(C.llama_sampler_sample(self._chain, context.handle, index))
        logits = C.llama_get_logits_ith(context.handle, index)
        token = self._candidates.draw(self._chain, logits, first=self._grammar)
        C.llama_sampler_accept(self._grammar, token)
        C.llama_sampler_accept(self._chain, token)
        return token

    original = module.Sampler.sample
    module.Sampler.sample = sample  # type: ignore[method-assign]
    try:
        yield
    finally:
        module.Sampler.sample = original  # type: ignore[method-assign]


def _stats(model: Any, text: str) -> dict[str, float]:
    stats = model.last_stats
    return {
        "decode_tokens_per_s": stats.decode_tokens_per_s or 0.0,
        "completion_tokens": float(stats.completion_tokens),
        "time_to_first_token_s": stats.time_to_first_token_s or 0.0,
        "chars": float(len(text)),
    }


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=320)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from localchat.api import open_model
    from localchat.catalog import load_catalog
    from localchat.store.pip_models import pip_model_file

    schema = schema_20()
    compiled = compile_times(schema)  # first: the cold figure is the process's first call
    entry = load_catalog().get("gemma-3-270m")
    assert entry is not None and entry.pip is not None
    with tempfile.TemporaryDirectory() as folder:
        model_path = pip_model_file(entry.name, entry.pip, directory=Path(folder))
        assert model_path is not None, "install the offline-model extra"
        runs: dict[str, list[dict[str, float]]] = {"free": [], "schema": [], "first": []}
        with open_model(str(model_path), n_ctx=N_CTX, n_threads=args.threads, local=True) as model:
            run_free(model, 8)  # warm-up: first decode pays for page faults
            for _ in range(args.runs):  # alternate so drift hits every side alike
                runs["free"].append(run_free(model, args.tokens))
                runs["schema"].append(run_schema(model, args.tokens, schema))
                with grammar_first():
                    runs["first"].append(run_schema(model, args.tokens, schema))
            threads = model.plan_summary.get("n_threads")
    report = summarise(runs, compiled, args, threads)
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS}")


def summarise(
    runs: dict[str, list[dict[str, float]]], compiled: dict[str, float], args: Any, threads: Any
) -> dict[str, Any]:
    def median(side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[side])

    sides = {side: {key: median(side, key) for key in runs[side][0]} for side in runs}
    ratio = sides["schema"]["decode_tokens_per_s"] / sides["free"]["decode_tokens_per_s"]
    return {
        "model": "gemma-3-270m Q4_K_M (CPU)",
        "runs": args.runs,
        "max_tokens": args.tokens,
        "threads": threads,
        "free": sides["free"],
        "schema": sides["schema"],
        "schema_grammar_first": sides["first"],
        "decode_ratio": ratio,
        "decode_ratio_grammar_first": sides["first"]["decode_tokens_per_s"]
        / sides["free"]["decode_tokens_per_s"],
        "ttft_over_free_s": sides["schema"]["time_to_first_token_s"]
        - sides["free"]["time_to_first_token_s"],
        "compile": compiled,
        "all_runs": runs,
        "targets": {"decode_ratio_min": TARGET_RATIO},
    }


def print_table(report: dict[str, Any]) -> None:
    free, shaped, first = report["free"], report["schema"], report["schema_grammar_first"]
    print(f"{'':28}{'free':>10}{'schema':>10}{'ratio':>8}{'grammar first':>15}{'ratio':>8}")
    print(
        f"{'decode tok/s (median)':28}{free['decode_tokens_per_s']:>10.2f}"
        f"{shaped['decode_tokens_per_s']:>10.2f}{report['decode_ratio']:>8.3f}"
        f"{first['decode_tokens_per_s']:>15.2f}{report['decode_ratio_grammar_first']:>8.3f}"
    )
    print(
        f"{'completion tokens (median)':28}{free['completion_tokens']:>10.0f}"
        f"{shaped['completion_tokens']:>10.0f}{'':>8}{first['completion_tokens']:>15.0f}"
    )
    print(
        f"{'time to first token s':28}{free['time_to_first_token_s']:>10.3f}"
        f"{shaped['time_to_first_token_s']:>10.3f}{'':>8}{first['time_to_first_token_s']:>15.3f}"
    )
    print(
        f"{'replies that parse as JSON':28}{'':>10}{shaped['valid_json']:>10.0%}{'':>8}"
        f"{first['valid_json']:>15.0%}"
    )
    compiled = report["compile"]
    print(
        f"\nschema -> GBNF: {compiled['cold_s'] * 1000:.0f} ms cold, "
        f"{compiled['warm_s'] * 1000:.0f} ms warm ({compiled['grammar_chars']} characters)"
    )
    print(f"target: decode ratio >= {report['targets']['decode_ratio_min']}")


if __name__ == "__main__":
    main()
