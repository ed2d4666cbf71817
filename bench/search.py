"""Benchmark hub search: time to a full page of 20 verdicts, concurrent against serial.

    python bench/search.py [--repos 20] [--latency-ms 150] [--rounds 3] [--workers 8]

Serves 20 GGUF repos of different shapes (dense 1B-8B with several quants, i-quants, a
Mixtral MoE, a 70B in three parts; real headers over sparse files, from
tests/fixtures/hub_search_repos.py) from the loopback fake hub, which waits
``--latency-ms`` before every answer (a hub far away).  Each measurement is a fresh
process with an empty cache (``LOCALCHAT_HOME``), running ``services.search_models``
for a what-if machine (one 8 GiB GPU, 16 GiB RAM) with 1 worker (serial) or
``--workers``, alternating; then one run with the cache warm.  Reported per mode: time to
the repo list, to the first verdict and to all 20 (medians), bytes read from the hub per
repo, requests, and the process's peak RSS.

Prints a table and writes bench/results/search.json.  Never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.fakehub import FakeHub, hub_env  # noqa: E402
from tests.fixtures.hub_search_repos import write_files  # noqa: E402

CHILD = r"""
import json, resource, sys, threading, time
from localchat import services
workers, limit = int(sys.argv[1]), int(sys.argv[2])
hardware = services.plan_hardware(services.WhatIf(vram=("8GiB",), ram="16GiB"))
marks = {}
start = time.perf_counter()
def listed(repos):
    marks["listed_s"] = time.perf_counter() - start
def planned(hit):
    marks.setdefault("first_s", time.perf_counter() - start)
outcome = services.search_models(
    services.SearchRequest("bench", limit=limit, workers=workers, time_budget_s=600),
    hardware, on_repos=listed, on_hit=planned,
)
marks["all_s"] = time.perf_counter() - start
statuses = {}
for hit in outcome.hits:
    statuses[hit.verdict.status] = statuses.get(hit.verdict.status, 0) + 1
marks["statuses"] = statuses
marks["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(marks))
"""

SHAPES = (  # (files of one repo, by write_files key), cycled over the repos
    ("8b-Q4_K_M", "8b-Q8_0"),
    ("3b-IQ4_XS", "3b-Q4_K_M"),
    ("1b-Q8_0",),
    ("moe-Q4_0",),
    ("70b-Q4_K_M",),
    ("tiny-Q8_0", "tiny-Q4_K_M"),
)


def add_repos(hub: FakeHub, files: dict[str, Any], n_repos: int) -> None:
    for i in range(n_repos):
        repo_files: dict[str, Path | bytes] = {}
        for key in SHAPES[i % len(SHAPES)]:
            paths = files[key] if isinstance(files[key], list) else [files[key]]
            for path in paths:
                repo_files[f"bench{i:02d}-{path.name}"] = path
        hub.add_repo(
            f"bench/model{i:02d}-GGUF", repo_files, meta={"downloads": 1000 - i},
            cheap_digest=True,
        )  # fmt: skip


def run_child(hub: FakeHub, home: Path, workers: int, limit: int) -> dict[str, Any]:
    hub.reset_counters()
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(workers), str(limit)],
        capture_output=True, text=True, env=env, timeout=900, check=True,
    )  # fmt: skip
    marks: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    log = hub.requests()
    marks["requests"] = len(log)
    marks["mb_per_repo"] = hub.bytes_served() / 1e6 / limit
    return marks


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "listed_s": median("listed_s"),
        "first_s": median("first_s"),
        "all_s": median("all_s"),
        "all_s_runs": [round(r["all_s"], 3) for r in runs],
        "requests": median("requests"),
        "mb_per_repo": median("mb_per_repo"),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "statuses": runs[-1]["statuses"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        files = write_files(Path(tmp) / "models")
        with FakeHub() as hub:
            add_repos(hub, files, args.repos)
            hub.latency_s = args.latency_ms / 1000
            modes = {"serial (1 worker)": 1, f"concurrent ({args.workers} workers)": args.workers}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
            for round_number in range(args.rounds):
                for name, workers in modes.items():  # alternating, each from a cold cache
                    home = Path(tmp) / f"home-{round_number}-{workers}"
                    runs[name].append(run_child(hub, home, workers, args.repos))
            warm_home = Path(tmp) / f"home-0-{args.workers}"
            warm = run_child(hub, warm_home, args.workers, args.repos)
    results = {name: summary(r) for name, r in runs.items()}
    results["warm cache (concurrent)"] = summary([warm])
    print_table(results, args)
    out = ROOT / "bench" / "results" / "search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"repos": args.repos, "latency_ms": args.latency_ms, "rounds": args.rounds,
                "results": results}  # fmt: skip
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"{args.repos} repos, {args.latency_ms:.0f} ms per request, medians of {args.rounds}")
    print(
        f"{'mode':<26}{'list s':>8}{'first s':>9}{'all s':>8}{'requests':>10}"
        f"{'MB/repo':>9}{'peak RSS MB':>13}"
    )
    for name, row in results.items():
        print(
            f"{name:<26}{row['listed_s']:>8.2f}{row['first_s']:>9.2f}{row['all_s']:>8.2f}"
            f"{row['requests']:>10.0f}{row['mb_per_repo']:>9.2f}{row['peak_rss_mb']:>13.0f}"
        )
    print("verdicts:", results[next(iter(results))]["statuses"])


if __name__ == "__main__":
    main()
