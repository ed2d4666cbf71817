"""Parsing llama.cpp's buffer log lines, and learning from them."""

from __future__ import annotations

import json
from pathlib import Path

from localchat.engine.settings import LlamaSettings
from localchat.paths import calibration_file
from localchat.planner.calibration import (
    compute_scale,
    load_records,
    model_identity,
    parse_llama_log,
    record_load,
)

MiB = 1 << 20

# from a real CPU load of gemma-3-270m Q4_K_M (llama-cpp-python 0.3.36), abridged
CPU_LOG = """\
llama_model_loader: loaded meta data with 33 key-value pairs and 236 tensors from x.gguf
load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
load_tensors:   CPU_REPACK model buffer size =    12.66 MiB
llama_context: n_ctx                 = 4096
llama_context: n_batch               = 512
llama_context: n_ubatch              = 512
llama_context: flash_attn            = disabled
llama_context:        CPU  output buffer size =     1.00 MiB
llama_kv_cache:        CPU KV buffer size =    12.00 MiB
llama_kv_cache:        CPU KV buffer size =    60.00 MiB
sched_reserve:        CPU compute buffer size =   514.50 MiB
"""

# the shape of a CUDA partial-offload log (llama.cpp's format)
CUDA_LOG = """\
llama_model_loader: loaded meta data with 30 key-value pairs and 724 tensors from a.gguf
load_tensors: offloading 40 repeating layers to GPU
load_tensors: offloaded 41/81 layers to GPU
load_tensors:        CUDA0 model buffer size = 20480.00 MiB
load_tensors:   CPU_Mapped model buffer size = 21000.50 MiB
llama_context:  CUDA_Host  output buffer size =     0.49 MiB
llama_kv_cache:      CUDA0 KV buffer size =  1280.00 MiB
llama_kv_cache:        CPU KV buffer size =  1312.00 MiB
sched_reserve:      CUDA0 compute buffer size =  1108.50 MiB
sched_reserve:  CUDA_Host compute buffer size =    40.01 MiB
"""


def test_parse_cpu_log() -> None:
    parsed = parse_llama_log(CPU_LOG)
    assert parsed["model_buffers"] == {
        "CPU_Mapped": round(235.16 * MiB),
        "CPU_REPACK": round(12.66 * MiB),
    }
    assert parsed["kv_buffers"] == {"CPU": 72 * MiB}
    assert parsed["compute_buffers"] == {"CPU": round(514.5 * MiB)}
    assert (parsed["n_ctx"], parsed["n_ubatch"], parsed["flash_attn"]) == (4096, 512, "disabled")
    cpu = parsed["devices"]["CPU"]
    assert cpu["kv"] == 72 * MiB
    assert cpu["compute"] == round(514.5 * MiB) + MiB  # compute + output buffer
    assert parsed["offloaded_layers"] is None


def test_parse_cuda_log_groups_by_device() -> None:
    parsed = parse_llama_log(CUDA_LOG)
    assert (parsed["offloaded_layers"], parsed["total_layers"]) == (41, 81)
    gpu, cpu = parsed["devices"]["CUDA0"], parsed["devices"]["CPU"]
    assert gpu == {"weights": 20480 * MiB, "kv": 1280 * MiB, "compute": round(1108.5 * MiB)}
    assert cpu["weights"] == round(21000.5 * MiB)
    assert cpu["compute"] == round(40.01 * MiB) + round(0.49 * MiB)


def test_only_the_last_load_counts() -> None:
    parsed = parse_llama_log(CUDA_LOG + CPU_LOG)
    assert "CUDA0" not in parsed["devices"]


def test_record_load_and_compute_scale(gemma_path: Path) -> None:
    settings = LlamaSettings(model_path=gemma_path, n_ctx=4096)
    record = record_load(gemma_path, settings, CPU_LOG, llama_version="0.3.36")
    assert record is not None
    stored = load_records()
    assert len(stored) == 1 and calibration_file().is_file()
    assert record["predicted"]["CPU"]["kv"] == 72 * MiB  # the planner's own figure, exact
    scale = compute_scale(
        model_identity(gemma_path), flash_attn=False, n_ubatch=512, version="0.3.36"
    )
    assert 0.99 < scale < 1.01
    assert compute_scale("other:1", flash_attn=False, n_ubatch=512, version="0.3.36") == 1.0


def test_nothing_to_learn_and_bad_file(tmp_path: Path) -> None:
    settings = LlamaSettings(model_path=tmp_path / "x.gguf")
    assert record_load(tmp_path / "x.gguf", settings, "no buffers here") is None
    calibration_file().parent.mkdir(parents=True, exist_ok=True)
    calibration_file().write_text("{not json")
    assert load_records() == {}
    doubled = CPU_LOG.replace("514.50", "1029.00")
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x" * 10)  # not a GGUF: stored without a prediction
    record = record_load(path, settings, doubled, llama_version="v")
    assert record is not None and record["predicted"] is None
    assert json.loads(calibration_file().read_text())
