"""Benchmark ``localchat pull`` on loopback against a plain HTTP GET of the same file.

    python bench/download.py [--size-mb 1000] [--rounds 3]

Serves one generated GGUF-like file from the fake hub (tests/fixtures/fakehub.py,
sendfile on 127.0.0.1) and, alternating in one run:

* ``plain GET``   a minimal Python client (http.client, readinto a 1 MiB buffer, write)
* ``curl``        ``curl -o`` (if installed), for reference
* ``localchat``   ``python -m localchat pull`` (list repo, HEAD, Range GET, sha256, rename)

Every row is a whole process, start to exit.  The ``localchat (transfer)`` row
subtracts the fixed cost of a ``pull`` that finds everything on disk (interpreter
start, imports, the repo listing), which is what the throughput of the download
itself is compared on.  Then it kills a pull mid-file (SIGINT and SIGKILL), resumes
it, and reads the server's byte counters to report what was fetched twice.

Prints a table and writes bench/results/download.json.  Never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.fakehub import FakeHub, hub_env, write_sparse_gguf_like  # noqa: E402

REPO = "bench/big-GGUF"
FILE = "big-Q4_K_M.gguf"

PLAIN_GET = r"""
import http.client, os, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port)
conn.request("GET", url.path)
resp = conn.getresponse()
with open(sys.argv[2], "wb", buffering=0) as out:
    while chunk := resp.read1(1 << 20):
        out.write(chunk)
    if sys.argv[3:] == ["fsync"]:
        os.fsync(out.fileno())
"""

HF_DOWNLOAD = r"""
import sys
from huggingface_hub import hf_hub_download
hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], endpoint=sys.argv[4])
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # start every run with no dirty pages from the previous one
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def pull_env(hub: FakeHub, home: Path) -> dict[str, str]:
    return {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home)}


def pull_cmd() -> list[str]:
    return [sys.executable, "-m", "localchat", "pull", "-q", f"{REPO}:Q4_K_M"]


def measure_throughput(hub: FakeHub, work: Path, size_bytes: int, rounds: int) -> dict:
    url = f"{hub.url}/{REPO}/resolve/main/{FILE}"
    out = work / "plain.gguf"
    hf_cache = work / "hf-cache"
    home = work / "home"
    clients = {
        "plain GET": [sys.executable, "-c", PLAIN_GET, url, str(out)],
        "plain GET + fsync": [sys.executable, "-c", PLAIN_GET, url, str(out), "fsync"],
        "huggingface_hub": [sys.executable, "-c", HF_DOWNLOAD, REPO, FILE, str(hf_cache), hub.url],
        "localchat": pull_cmd(),
    }
    if shutil.which("curl"):
        clients["curl"] = ["curl", "-s", "-o", str(out), url]
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, cmd in clients.items():
            env = pull_env(hub, home) if name == "localchat" else None
            times[name].append(timed(cmd, env))
            out.unlink(missing_ok=True)
            shutil.rmtree(hf_cache, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
    subprocess.run(pull_cmd(), env=pull_env(hub, home), check=True, capture_output=True)
    overhead_s = statistics.median(timed(pull_cmd(), pull_env(hub, home)) for _ in range(3))
    shutil.rmtree(home, ignore_errors=True)
    rows = {name: _row(size_bytes, values) for name, values in times.items()}
    rows["localchat (transfer)"] = _row(size_bytes, [t - overhead_s for t in times["localchat"]])
    return {"rows": rows, "localchat_fixed_overhead_s": overhead_s}


def _row(size_bytes: int, seconds: list[float]) -> dict:
    best = min(seconds)
    median = statistics.median(seconds)
    return {
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(median, 3),
        "median_mb_per_s": round(size_bytes / median / 1e6, 1),
        "best_mb_per_s": round(size_bytes / best / 1e6, 1),
    }


def measure_resume(hub: FakeHub, work: Path, size_bytes: int, sig: signal.Signals) -> dict:
    """Kill a pull at about half the file, resume it, count bytes the server sent twice."""
    home = work / f"resume-{sig.name}"
    shutil.rmtree(home, ignore_errors=True)
    env = pull_env(hub, home)
    hub.reset_counters()
    proc = subprocess.Popen(
        pull_cmd(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    partial_dir = home / "hf-cache" / ".localchat-partial"
    kept = _wait_and_kill(proc, partial_dir, size_bytes // 2, sig)
    time.sleep(0.5)
    served_first = hub.bytes_served(FILE)
    subprocess.run(
        pull_cmd(), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    served_total = hub.bytes_served(FILE)
    refetched = served_total - size_bytes
    resume_from = _first_range_start(hub)
    shutil.rmtree(home, ignore_errors=True)
    return {
        "signal": sig.name,
        "kept_bytes": kept,
        "resume_range_start": resume_from,
        "rerequested_bytes_already_on_disk": max(0, kept - resume_from),
        "served_before_kill": served_first,
        "served_total": served_total,
        "refetched_bytes": refetched,
        "refetched_pct_of_kept": round(100 * refetched / kept, 3) if kept else None,
        "refetched_pct_of_file": round(100 * refetched / size_bytes, 3),
    }


def _first_range_start(hub: FakeHub) -> int:
    for request in hub.requests("GET", FILE):
        if request.range_header:
            return int(request.range_header.split("=")[1].split("-")[0])
    return 0


def _wait_and_kill(proc: subprocess.Popen, partial_dir: Path, at_bytes: int, sig) -> int:
    while proc.poll() is None:
        partials = list(partial_dir.rglob("*.incomplete")) if partial_dir.exists() else []
        if partials and partials[0].stat().st_size >= at_bytes:
            proc.send_signal(sig)
            proc.wait()
            return partials[0].stat().st_size
        time.sleep(0.005)
    raise RuntimeError("the pull finished before it could be interrupted; use a bigger file")


def print_report(report: dict) -> None:
    size_mb = report["size_bytes"] / 1e6
    print(
        f"\nloopback download of a {size_mb:.0f} MB file, {report['rounds']} rounds (alternating)"
    )
    print("throughput = file size / median wall time (higher is better)")
    print(f"{'client':<22}{'median s':>10}{'median MB/s':>13}{'best MB/s':>11}")
    for name, row in report["throughput"]["rows"].items():
        print(
            f"{name:<22}{row['median_s']:>10}{row['median_mb_per_s']:>13}{row['best_mb_per_s']:>11}"
        )
    overhead = report["throughput"]["localchat_fixed_overhead_s"]
    print(f"localchat fixed overhead (pull with nothing to fetch): {overhead:.2f} s")
    for key, value in report["ratios"].items():
        print(f"{key}: {value:.2f}x")
    print(
        f"\n{'interrupt':<10}{'kept MB':>9}{'Range from':>12}{'re-fetched B':>14}"
        f"{'% of kept':>11}{'% of file':>11}"
    )
    for row in report["resume"]:
        print(
            f"{row['signal']:<10}{row['kept_bytes'] / 1e6:>9.1f}{row['resume_range_start']:>12}"
            f"{row['refetched_bytes']:>14}{row['refetched_pct_of_kept']:>11}"
            f"{row['refetched_pct_of_file']:>11}"
        )
    print(
        "re-fetched = bytes the server sent in both runs minus the file size: the resumed "
        "GET starts exactly at the kept size; what was in flight (socket buffers) when the "
        "process died is sent again."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "download.json")
    args = parser.parse_args()
    size_bytes = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        source = write_sparse_gguf_like(work / "source.gguf", size_bytes)
        with FakeHub(work / "hub") as hub:
            (work / "hub").mkdir(exist_ok=True)
            hub.add_repo(REPO, {FILE: source})
            throughput = measure_throughput(hub, work, size_bytes, args.rounds)
            resume = [
                measure_resume(hub, work, size_bytes, s) for s in (signal.SIGINT, signal.SIGKILL)
            ]
    rows = throughput["rows"]
    report = {
        "size_bytes": size_bytes,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "throughput": throughput,
        "ratios": {
            f"{a} / {b}": rows[b]["median_s"] / rows[a]["median_s"]
            for a, b in (
                ("localchat", "plain GET"),
                ("localchat (transfer)", "plain GET"),
                ("localchat", "plain GET + fsync"),
                ("localchat (transfer)", "plain GET + fsync"),
                ("localchat", "huggingface_hub"),
            )
        },
        "resume": resume,
    }
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
