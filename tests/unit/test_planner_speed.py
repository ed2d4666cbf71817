"""The speed model (decode and prefill terms), its calibration by `localchat bench`, and the
bench's fit of measured runs into those terms."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from localchat.benchmark.runner import BenchTest, fit_terms
from localchat.cli.plan_cmd import plan as plan_command
from localchat.gguf import read_gguf
from localchat.planner import PlanRequest, plan_for_file
from localchat.planner.calibration import llama_cpp_version
from localchat.planner.memory import MemorySettings, estimate_memory
from localchat.planner.profiles import what_if_hardware
from localchat.planner.speed import (
    CPU_EFFICIENCY,
    SpeedTerms,
    ThreadCounts,
    _device_work,
    cpu_bandwidth,
    model_terms,
)
from localchat.planner.speed_calibration import device_key, model_key, record_bench


@pytest.fixture
def cpu_box():
    return what_if_hardware(None, ram="16GiB", cpu_only=True)  # 8 cores, 60 GB/s


def _terms(path: Path, hardware, threads: int, n_ctx: int = 4096) -> SpeedTerms:
    info = read_gguf(path)
    settings = MemorySettings(n_ctx=n_ctx)
    estimate = estimate_memory(info, settings)
    return model_terms(info, settings, estimate, hardware, ThreadCounts(threads, threads))


def test_decode_slows_as_the_cache_fills_and_ttft_adds_up(tiny_gguf: Path, cpu_box) -> None:
    terms = _terms(tiny_gguf, cpu_box, 4)
    assert terms.decode_per_kv_s > 0 and terms.prefill_per_kv_s > 0
    assert terms.decode_tok_s(4000) < terms.decode_tok_s(10)
    assert terms.prefill_tok_s(2048) < terms.prefill_tok_s(128)
    assert terms.ttft_s(300) == pytest.approx(terms.prefill_s(300) + terms.decode_s(300))


def test_threads_help_until_memory_bandwidth_bounds_decode(
    llama70b_q4_k_m_gguf: Path, cpu_box
) -> None:
    one, four, eight = (_terms(llama70b_q4_k_m_gguf, cpu_box, t) for t in (1, 4, 8))
    assert one.decode_base_s > four.decode_base_s >= eight.decode_base_s
    info = read_gguf(llama70b_q4_k_m_gguf)
    floor_s = info.weights_bytes * 0.9 / (cpu_bandwidth(cpu_box) * CPU_EFFICIENCY)
    assert eight.decode_base_s > floor_s  # a 40 GB model is memory-bound on 8 cores
    assert eight.prefill_base_s < four.prefill_base_s  # prompts stay compute-bound


def test_moe_decode_reads_only_the_active_experts(mixtral_q4_0_gguf: Path) -> None:
    info = read_gguf(mixtral_q4_0_gguf)
    settings = MemorySettings(n_ctx=4096)
    cpu = _device_work(info, settings, estimate_memory(info, settings))[-1]
    experts = sum(layer.expert_bytes for layer in info.layers)
    dense = sum(layer.dense_bytes for layer in info.layers)
    assert cpu.weight_bytes == pytest.approx(dense + experts * 2 / 8 + info.output_bytes)


def test_fit_recovers_base_and_cache_cost_from_runs_at_two_depths() -> None:
    decode_base, decode_kv, prefill_base, prefill_kv = 0.02, 2e-5, 0.002, 1e-6
    runs = []
    for kind, n, depth in (("pp", 512, 0), ("tg", 128, 0), ("pp", 512, 4096), ("tg", 128, 4096)):
        test = BenchTest(f"{kind}{n}", kind, n, depth)
        base, slope = (prefill_base, prefill_kv) if kind == "pp" else (decode_base, decode_kv)
        test.seconds = [n * (base + slope * test.average_kv)] * 2
        runs.append(test)
    fitted = fit_terms(runs, SpeedTerms(1, 1, 1, 1))
    assert fitted.decode_base_s == pytest.approx(decode_base)
    assert fitted.decode_per_kv_s == pytest.approx(decode_kv)
    assert fitted.prefill_base_s == pytest.approx(prefill_base)
    assert fitted.prefill_per_kv_s == pytest.approx(prefill_kv)
    shallow_only = fit_terms(runs[:2], SpeedTerms(0.01, 1e-5, 0.001, 5e-7))
    assert shallow_only.decode_per_kv_s == pytest.approx(2e-5, rel=0.2)  # scaled like the base


def test_a_stored_bench_calibrates_later_plans(tiny_gguf: Path, cpu_box) -> None:
    request = PlanRequest(n_ctx=2048)
    before = plan_for_file(tiny_gguf, cpu_box, request=request)
    assert before.speed.source == "modelled"
    measured = replace(
        before.speed.terms,
        decode_base_s=before.speed.terms.decode_base_s * 2,
        prefill_base_s=before.speed.terms.prefill_base_s * 3,
    )
    record_bench(
        model=model_key(read_gguf(tiny_gguf)),
        llama_version=llama_cpp_version(),
        device=device_key(cpu_box),
        settings={
            "n_gpu_layers": 0,
            "n_cpu_moe": 0,
            "n_threads": before.n_threads,
            "n_threads_batch": before.n_threads_batch,
            "type_k": "f16",
            "type_v": "f16",
            "flash_attn": before.flash_attn,
        },
        measured=measured,
        modelled=before.speed.terms,
        results={},
    )
    after = plan_for_file(tiny_gguf, cpu_box, request=request)
    assert after.speed.source.startswith("measured: localchat bench (this model, same settings")
    assert after.speed.terms.decode_base_s == pytest.approx(measured.decode_base_s)
    assert after.speed.terms.prefill_base_s == pytest.approx(measured.prefill_base_s)
    other = plan_for_file(tiny_gguf, cpu_box, request=replace(request, n_threads=1))
    assert other.speed.source.startswith("measured: localchat bench (this model, other settings")
    off = plan_for_file(tiny_gguf, cpu_box, request=replace(request, calibrate_speed=False))
    assert off.speed.source == "modelled"


def test_plan_json_shows_speeds_threads_and_their_source(tiny_gguf: Path) -> None:
    result = CliRunner().invoke(
        plan_command, [str(tiny_gguf), "--json", "--cpu-only", "--threads", "3", "--ctx", "1024"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["n_threads"] == plan["n_threads_batch"] == 3
    assert plan["predicted_prefill_tok_s"] > plan["predicted_tok_s"] > 0
    assert plan["predicted_ttft_s"] > 0 and plan["ttft_prompt_tokens"] == 512
    assert plan["speed_source"] == "modelled"
    text = CliRunner().invoke(plan_command, [str(tiny_gguf), "--cpu-only", "--ngl", "5"]).output
    assert "speed (modelled): prefill" in text and "no GPU to offload to" in text


def test_plan_uses_settings_toml_threads_unless_given(tiny_gguf: Path) -> None:
    from localchat.settings import Settings, save_settings

    save_settings(Settings(threads=3))
    args = [str(tiny_gguf), "--json", "--cpu-only", "--ctx", "1024"]
    from_settings = json.loads(CliRunner().invoke(plan_command, args).output)
    assert from_settings["n_threads"] == 3 and "settings.toml" in from_settings["threads_source"]
    given = json.loads(CliRunner().invoke(plan_command, [*args, "--threads", "1"]).output)
    assert given["n_threads"] == given["n_threads_batch"] == 1
