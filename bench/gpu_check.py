"""Everything localchat does with a GPU, checked on a real one in one command.

    python bench/gpu_check.py [--sdist llama_cpp_python-trimmed.tar.gz] [--wheels DIR]
                              [--gemma PATH] [--awq-models DIR] [--out FILE]

1. llama-cpp-python with the GPU backend: the installed one if it offloads, else built
   from ``--sdist`` into a throw-away folder (CUDA: ``-DGGML_CUDA=on
   -DCMAKE_CUDA_ARCHITECTURES=native``; ``--cuda-arch 90`` on an H200), timed;
2. ``hw`` and ``doctor`` see the GPU with the VRAM nvidia-smi reports;
3. the plan against llama.cpp's log of loading it, per device (weights and KV within
   1 MiB, compute within 10 %, total within 3 %: bench/plan_accuracy.py's targets) and
   against NVML's used-memory growth, on gemma-3-270m and on a written Llama-3-8B-shaped
   model (zero weights in a sparse file, real shapes);
4. ``ask`` with every layer on the GPU, ``bench`` (its calibration, and the modelled
   and calibrated predictions against it) and ``bench --ngl`` with half the layers;
5. the out-of-memory back-off for real: plan, then a torch child takes VRAM, then load;
6. the MoE expert split on a huozi3-shaped (Mixtral-8x7B) file, buffers per device;
7. AWQ on cuda:0 with the tiny checkpoints, decode speed next to GGUF;
8. slots (``bench/concurrency.py``) when the tree has it.

Prints one table, writes JSON (``--out``), exits 0 when every row held, 1 on any
mismatch, 2 when nothing could be checked.  On a Mac (Metal) the CUDA-only rows are
skipped with a note.  ``--allow-cpu --quick`` tries the kit itself on a machine without
a GPU.  ``--trim-sdist SRC OUT`` makes the trimmed sdist and ``--prepare-awq DIR`` the
tiny AWQ models, ahead, on a machine with network (README: "Checking a GPU").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_kit import checks_device as device  # noqa: E402 - after the path is set
from bench.gpu_kit import checks_run as run  # noqa: E402
from bench.gpu_kit import worker  # noqa: E402
from bench.gpu_kit.build import build_into, offload_supported, trim_sdist, with_site  # noqa: E402
from bench.gpu_kit.context import ChildFailed, Kit, gpu_kind  # noqa: E402
from bench.gpu_kit.models import write_models  # noqa: E402
from bench.gpu_kit.rows import Row, failed, format_table, skipped, summary, verdict  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gpu_check.json"
CHECKS = ("hw", "doctor", "plan", "speed", "oom", "moe", "awq", "slots")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="llama-cpp-python sdist to build if needed")
    parser.add_argument("--wheels", type=Path, help="wheels to install beside the build")
    parser.add_argument("--site", type=Path, default=Path(tempfile.gettempdir()) / "lc-gpu-site")
    parser.add_argument("--cuda-arch", default="native", help="CMAKE_CUDA_ARCHITECTURES (H200: 90)")
    parser.add_argument("--gemma", type=Path, help="gemma-3-270m GGUF (default: the pip one)")
    parser.add_argument("--awq-models", type=Path, help="tiny AWQ checkpoints (built if absent)")
    parser.add_argument("--only", default=",".join(CHECKS), help="checks to run, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small written models")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (kit test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--trim-sdist", nargs=2, type=Path, metavar=("SRC", "OUT"))
    parser.add_argument("--prepare-awq", type=Path, metavar="DIR", help="build tiny AWQ models")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--built", type=Path, help=argparse.SUPPRESS)  # the build's report
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker.main(args.worker, json.loads(args.worker_args))
    if args.trim_sdist:
        sizes = trim_sdist(*args.trim_sdist)
        print(", ".join(f"{key} {value / 1e6:.1f} MB" for key, value in sizes.items()))
        return 0
    if args.prepare_awq:
        print(json.dumps(worker.awq_models(str(args.prepare_awq))))
        return 0
    kind = gpu_kind()
    report = Report(args.out, kind)
    if kind == "cpu" and not args.allow_cpu:
        report.add([skipped("GPU", "a GPU", "nvidia-smi lists none; not a Mac")])
        return report.finish()
    build = ensure_build(args, kind, argv)
    report.add(device.build_rows(build, kind))
    if build is not None and not build.get("offload", True):
        report.add([failed("GPU", "offload", "the build cannot offload")])
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="lc-gpu-check-") as work:
        kit = make_kit(args, kind, Path(work))
        run_checks(kit, args.only.split(","), report)
    return report.finish()


class Report:
    """The rows so far: printed as each check ends and saved to JSON after each, so a
    run cut short by a time limit still leaves what it found."""

    def __init__(self, out: Path, kind: str) -> None:
        self.out, self.kind = out, kind
        self.rows: list[Row] = []
        self.started = time.perf_counter()

    def add(self, rows: list[Row]) -> None:
        self.rows += rows
        if rows:
            print("\n".join(format_table(rows)[1:]), flush=True)
        self.save(complete=False)

    def finish(self) -> int:
        print("\n" + "\n".join(format_table(self.rows)))
        print(f"{summary(self.rows)} ({self.kind}, {time.perf_counter() - self.started:.0f} s)")
        self.save(complete=True)
        print(f"wrote {self.out}")
        return verdict(self.rows)

    def save(self, *, complete: bool) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "kind": self.kind,
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "nvidia_smi": shutil.which("nvidia-smi") is not None,
            "elapsed_s": round(time.perf_counter() - self.started, 1),
            "complete": complete,
            "verdict": verdict(self.rows),
            "summary": summary(self.rows),
            "rows": [row.to_json() for row in self.rows],
        }
        self.out.write_text(json.dumps(document, indent=1))


def ensure_build(
    args: argparse.Namespace, kind: str, argv: list[str] | None
) -> dict[str, Any] | None:
    """None when this interpreter's llama-cpp-python offloads (or no GPU is checked);
    else build one (``--sdist``; or reuse the one a run before left in ``--site``) and
    re-run this script with it first on PYTHONPATH (does not return)."""
    if args.built is not None:
        report: dict[str, Any] = json.loads(args.built.read_text())
        return report
    if kind == "cpu" or offload_supported(sys.executable):
        return None
    report_path = args.site / "gpu-check-build.json"
    if report_path.exists() and offload_supported(sys.executable, args.site):
        report = {**json.loads(report_path.read_text()), "reused": True}
    elif args.sdist is None:
        return {"seconds": 0, "offload": False, "cmake_args": "no --sdist to build from"}
    else:
        print(f"building llama-cpp-python for {kind} into {args.site} ...", flush=True)
        report = build_into(args.site, args.sdist, args.wheels, kind, args.cuda_arch)
        print(f"built in {report['seconds']:.0f} s", flush=True)
    report_path.write_text(json.dumps(report))
    again = [*(argv if argv is not None else sys.argv[1:]), "--built", str(report_path)]
    script = str(Path(__file__).resolve())
    env = with_site(dict(os.environ), args.site)
    os.execve(sys.executable, [sys.executable, script, *again], env)
    raise AssertionError("execve returned")


def make_kit(args: argparse.Namespace, kind: str, work: Path) -> Kit:
    kit = Kit(python=sys.executable, home=work / "home", work=work, kind=kind, quick=args.quick)
    kit.dense, kit.moe = write_models(work / "models", args.quick)
    kit.gemma = args.gemma or _gemma(kit)
    kit.awq_dir = args.awq_models or _awq_models(kit)
    return kit


def _gemma(kit: Kit) -> Path | None:
    try:
        found = kit.worker("gemma-path")
    except ChildFailed as exc:
        kit.notes.append(f"gemma-3-270m: {exc}")
        return None
    if not found["path"]:
        kit.notes.append(f"gemma-3-270m: {found['why']}")
    return Path(found["path"]) if found["path"] else None


def _awq_models(kit: Kit) -> Path | None:
    if kit.kind == "cpu":
        return None
    probe = kit.run([kit.python, "-c", "import gptqmodel, transformers, torch"], timeout_s=120)
    if probe.returncode != 0:
        kit.notes.append("AWQ: GPTQModel/transformers/torch not importable (carry their wheels)")
        return None
    root = kit.work / "awq"
    try:
        kit.worker("awq-models", timeout_s=900, root=str(root))
    except (ChildFailed, subprocess.TimeoutExpired) as exc:
        kit.notes.append(f"AWQ: building the tiny checkpoints failed: {exc}")
        return None
    return root


def run_checks(kit: Kit, only: list[str], report: Report) -> None:
    """Every check in order; a check that crashes is one failed row, the rest still run."""
    models = [
        (label, path) for label, path in (("gemma-3-270m", kit.gemma), ("dense", kit.dense)) if path
    ]
    plan: list[tuple[str, str, Callable[[], list[Row]]]] = [
        ("hw", "hw", lambda: device.hw_rows(kit)),
        ("doctor", "doctor", lambda: device.doctor_rows(kit)),
        *[("plan", f"plan vs log: {label}", _bind(device.plan_log_rows, kit, label, path)) for label, path in models],
        *[("speed", f"ask / bench: {label}", _bind(run.speed_rows, kit, label, path)) for label, path in models],
        ("oom", "OOM back-off", lambda: run.oom_rows(kit)),
        ("moe", "MoE expert split", lambda: run.moe_rows(kit)),
        ("awq", "AWQ", lambda: run.awq_rows(kit)),
        ("slots", "slots", lambda: run.slots_rows(kit)),
    ]  # fmt: skip
    report.add([skipped("models", "gemma-3-270m", n) for n in kit.notes if n.startswith("gemma")])
    for key, name, check in plan:
        if key not in only:
            continue
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        try:
            rows = check()
        except (ChildFailed, subprocess.TimeoutExpired, KeyError, IndexError, RuntimeError) as exc:
            rows = [failed(name, "run", f"{type(exc).__name__}: {exc}"[:160])]
        report.add(rows)


def _bind(
    check: Callable[[Kit, str, Path], list[Row]], kit: Kit, label: str, path: Path
) -> Callable[[], list[Row]]:
    return lambda: check(kit, label, path)


if __name__ == "__main__":
    sys.exit(main())
