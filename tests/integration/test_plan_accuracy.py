"""The planner's memory model against llama.cpp's own buffer sizes (issue 3's proof).

Runs ``bench/plan_accuracy.py --quick`` in a child process (so llama.cpp's global
log routing is not touched here): the real gemma-3-270m Q4_K_M at 512, 4096 and
32768 tokens with f16 / q8_0 / q4_0 K and V, flash attention on and off, other
micro-batches and the sliding-window cache, plus two small synthetic models (dense,
MoE) whose compute buffer is set by attention and FFN rather than the logits.

Targets: weights and KV within 1 MiB, compute within 10 %, total within 3 %.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.llama, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture(scope="module")
def accuracy_rows(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path) -> list[dict]:
    pytest.importorskip("llama_cpp")
    out = tmp_path_factory.mktemp("accuracy") / "plan_accuracy.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "plan_accuracy.py"),
            "--quick",
            "--model",
            str(gemma_path),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text())["rows"]


def _where(row: dict) -> str:
    return f"{row['model']} {row['label']}: predicted {row['predicted']}, logged {row['logged']}"


def test_every_case_was_measured(accuracy_rows: list[dict]) -> None:
    assert len(accuracy_rows) >= 25
    for row in accuracy_rows:
        assert row["logged"].get("weights", 0) > 0, _where(row)
        assert row["logged"].get("compute", 0) > 0, _where(row)


def test_weights_and_kv_within_1_mib(accuracy_rows: list[dict]) -> None:
    for row in accuracy_rows:
        assert abs(row["weights_error_mib"]) <= 1.0, _where(row)
        assert abs(row["kv_error_mib"]) <= 1.0, _where(row)


def test_compute_within_10_percent_and_total_within_3(accuracy_rows: list[dict]) -> None:
    for row in accuracy_rows:
        assert abs(row["compute_error_pct"]) <= 10.0, _where(row)
        assert abs(row["total_error_pct"]) <= 3.0, _where(row)


def test_contexts_and_cache_types_covered(accuracy_rows: list[dict]) -> None:
    gemma = [r["case"] for r in accuracy_rows if "gemma" in r["model"]]
    assert {c["n_ctx"] for c in gemma} >= {512, 4096, 32768}
    assert {(c["type_k"], c["type_v"]) for c in gemma} >= {
        ("f16", "f16"),
        ("q8_0", "q8_0"),
        ("q4_0", "q4_0"),
    }
    assert {c["flash_attn"] for c in gemma} == {True, False}


@pytest.mark.parametrize("n_parallel", [1, 4])
def test_the_plan_for_n_slots_is_what_llama_cpp_allocates(
    gemma_path: Path, n_parallel: int
) -> None:
    """``plan --parallel N`` against the engine loading that plan: N slots of 512 tokens
    share one unified cache of N × 512 cells and N rows of logits; same targets."""
    pytest.importorskip("llama_cpp")
    from localchat.engine import open_backend
    from localchat.hardware import detect_hardware
    from localchat.planner import PlanRequest, plan_for_file
    from localchat.planner.calibration import parse_llama_log

    request = PlanRequest(n_ctx=512, n_parallel=n_parallel, n_threads=2, calibrate_speed=False)
    plan = plan_for_file(gemma_path, detect_hardware(), request=request)
    assert plan.n_parallel == n_parallel and plan.n_ctx == 512 * n_parallel
    backend = open_backend(plan, gemma_path)
    try:
        assert backend.max_streams == n_parallel and backend.n_ctx == 512
        log_text = backend.load_report.log_text
    finally:
        backend.close()
    assert f"n_seq_max             = {n_parallel}" in log_text
    logged = parse_llama_log(log_text)["devices"]["CPU"]
    planned = {d.device: d for d in plan.devices}["CPU"]
    where = f"{n_parallel} slots: planned {planned}, logged {logged}"
    assert abs(planned.weights_bytes - logged["weights"]) <= MiB, where
    assert abs(planned.kv_bytes - logged["kv"]) <= MiB, where
    assert abs(planned.compute_bytes - logged["compute"]) <= 0.10 * logged["compute"], where
    total_planned = planned.weights_bytes + planned.kv_bytes + planned.compute_bytes
    assert abs(total_planned - sum(logged.values())) <= 0.03 * sum(logged.values()), where
