"""Threads, `localchat bench` and MoE expert placement on the real llama.cpp.

* the engine runs the thread counts the planner chose (read back from llama.cpp's context);
* `localchat bench` on the real gemma-3-270m: four tests, stored, and `plan` then predicts
  from them;
* tensor buffer overrides: a Mixtral-shaped GGUF (tiny, zero weights: only placement is
  checked) loaded with its other tensors on an RPC worker (`localchat worker` on
  127.0.0.1) and the experts of the first layers in this process's RAM; llama.cpp's load
  log must name the overridden tensors and its buffer sizes must match the planner's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from localchat.api import open_model
from localchat.errors import ExitCode
from localchat.planner.speed import SpeedTerms
from tests.integration.cli import assert_one_clean_error_line, localchat_env, run_localchat

pytestmark = [pytest.mark.llama]
llama_cpp = pytest.importorskip("llama_cpp")
MiB = 1 << 20


def test_the_engine_runs_the_planned_threads(gemma_path: Path) -> None:
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count()
    with open_model(str(gemma_path), n_ctx=512, allow_download=False) as model:
        n_threads, n_threads_batch = model.backend.thread_counts  # read from llama.cpp
        assert model.plan.n_threads == n_threads
        busy = "busy with other programs" in model.plan.threads_source  # a shared machine
        assert model.plan.n_threads == physical or busy
        assert n_threads_batch == model.plan.n_threads_batch
    with open_model(str(gemma_path), n_ctx=512, n_threads=1, allow_download=False) as model:
        assert model.backend.thread_counts == (1, 1)


@pytest.mark.slow
def test_bench_measures_stores_and_calibrates_plan(gemma_path: Path, localchat_home: Path) -> None:
    args = ["--ctx", "1024", "-p", "64", "-n", "16", "-r", "2"]
    bench = run_localchat(localchat_home, "bench", str(gemma_path), *args, "--json", timeout_s=600)
    assert bench.returncode == 0, bench.stderr
    assert "localchat bench: tg16 @ d" in bench.stderr  # the progress line
    result = json.loads(bench.stdout)
    names = [test["test"] for test in result["tests"]]
    assert names == ["pp64", "tg16", "pp64 @ d512", "tg16 @ d512"]
    for test in result["tests"]:
        assert len(test["tok_s_runs"]) == 2 and test["tok_s_mean"] > 0 and test["tok_s_sd"] >= 0
    assert result["stored"] and result["predicted_before"]["source"] == "modelled"
    plan = run_localchat(localchat_home, "plan", str(gemma_path), "--ctx", "1024", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["speed_source"].startswith("measured: localchat bench (this model, same")
    # the plan's decode figure (cache half full) comes from the stored terms: the modelled
    # ones scaled by measured / modelled (clamped against wild runs)
    measured = SpeedTerms.from_json(result["measured_terms"])
    modelled = SpeedTerms.from_json(result["modelled_terms"])
    calibrated = modelled.scaled(measured.ratios(modelled))
    assert planned["predicted_tok_s"] == pytest.approx(calibrated.decode_tok_s(512), abs=0.01)
    assert calibrated != modelled


def test_bench_refuses_bad_input_with_one_line(gemma_path: Path, localchat_home: Path) -> None:
    too_deep = run_localchat(
        localchat_home, "bench", str(gemma_path), "--ctx", "512", "--depth", "5000"
    )
    assert_one_clean_error_line(too_deep, ExitCode.USAGE)
    missing = run_localchat(localchat_home, "bench", str(localchat_home / "nope.gguf"))
    assert_one_clean_error_line(missing, ExitCode.MODEL_NOT_FOUND)


# use_mmap=False: with mmap, llama.cpp's CPU_Mapped buffer spans the file range from the
# first to the last CPU tensor (the workers' tensors in between included), so only an
# unmapped load logs the exact bytes kept in RAM
LOAD_WITH_OVERRIDES = r"""
import json, sys
from pathlib import Path
from localchat.engine import load_backend
from localchat.engine.settings import LlamaSettings
path, endpoint, n_cpu_moe = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = LlamaSettings(model_path=path, n_ctx=256, n_gpu_layers=99, n_cpu_moe=n_cpu_moe,
                         rpc_servers=(endpoint,), n_threads=1, use_mmap=False)
backend = load_backend(settings)
print(json.dumps({"log": backend.load_report.log_text}))
backend.close()
"""


@pytest.mark.slow
@pytest.mark.skipif(not llama_cpp.llama_supports_rpc(), reason="llama.cpp built without RPC")
def test_experts_stay_in_ram_while_the_rest_goes_to_a_worker(
    tmp_path: Path, localchat_home: Path
) -> None:
    from localchat.gguf import read_gguf
    from localchat.planner.memory import MemorySettings, estimate_memory
    from tests.fixtures.gguf_files import llama_spec, write_gguf
    from tests.integration.test_rpc_workers import start_worker

    spec = llama_spec(
        name="tiny-mixtral", quant="Q8_0", n_layers=4, n_embd=512, n_head=8, n_head_kv=2,
        n_ff=1024, n_vocab=512, n_ctx_train=2048, n_expert=4, n_expert_used=2,
    )  # fmt: skip
    spec.metadata["tokenizer.ggml.model"] = "llama"  # a vocabulary llama.cpp loads from tokens
    spec.tokens[3:259] = [f"<0x{byte:02X}>" for byte in range(256)]  # its byte fallback
    path = write_gguf(tmp_path / "tiny-mixtral.gguf", spec)[0]
    worker = start_worker(localchat_home)
    try:
        loaded = subprocess.run(
            [sys.executable, "-c", LOAD_WITH_OVERRIDES, str(path), worker.endpoint, "2"],
            capture_output=True, text=True, env=localchat_env(localchat_home), timeout=300,
        )  # fmt: skip
    finally:
        worker.stop()
    assert loaded.returncode == 0, loaded.stderr
    log = json.loads(loaded.stdout)["log"]
    overridden = set(
        re.findall(r"tensor (blk\.\d+\.ffn_\w+_exps)\.weight .* overridden to CPU", log)
    )
    assert overridden == {f"blk.{il}.ffn_{p}_exps" for il in (0, 1) for p in ("gate", "up", "down")}
    info = read_gguf(path)
    settings = MemorySettings(n_ctx=256, n_gpu_layers=5, n_cpu_moe=2)
    rpc, cpu = estimate_memory(info, settings, n_gpus=1, n_remote=1, cpu_features=()).devices
    logged = _model_buffers(log)
    assert abs(logged["RPC"] - rpc.weights_bytes) < 0.02 * MiB, logged
    assert abs(logged["CPU"] - cpu.weights_bytes) < 0.02 * MiB, logged
    experts_in_ram = sum(info.layers[il].expert_bytes for il in (0, 1))
    assert cpu.weights_bytes == info.input_bytes + experts_in_ram


def _model_buffers(log: str) -> dict[str, float]:
    """'load_tensors: <BUF> model buffer size = X MiB' lines: RPC devices vs this machine."""
    sizes = {"RPC": 0.0, "CPU": 0.0}
    for name, mib in re.findall(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB", log):
        sizes["RPC" if name.startswith("RPC") else "CPU"] += float(mib) * MiB
    return sizes
