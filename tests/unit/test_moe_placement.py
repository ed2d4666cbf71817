"""MoE placement on a generated Mixtral-8x7B-shaped GGUF (huozi3's shapes): per-device bytes
under a layer split and an expert split, and the planner's choice between them.

Expected bytes are summed here from the spec's own tensor list (names and sizes as
written to the file), not from the planner's grouping.  The GPU is a what-if one: no
GPU exists on the test machines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from localchat.cli.plan_cmd import plan as plan_command
from localchat.gguf import read_gguf
from localchat.planner import PlanRequest, plan_model
from localchat.planner.memory import MemorySettings, estimate_memory
from localchat.planner.profiles import what_if_hardware
from tests.fixtures.gguf_files import mixtral_spec

EXPERT = re.compile(r"^blk\.(\d+)\.ffn_(gate|up|down)_exps\.weight$")
LAYER = re.compile(r"^blk\.(\d+)\.")


def _spec_bytes() -> tuple[int, dict[int, int], dict[int, int], int]:
    """(input bytes, dense bytes per layer, expert bytes per layer, output bytes)."""
    spec = mixtral_spec("Q4_0")
    dense: dict[int, int] = {}
    experts: dict[int, int] = {}
    input_bytes = output_bytes = 0
    for tensor in spec.tensors:
        if match := EXPERT.match(tensor.name):
            il = int(match.group(1))
            experts[il] = experts.get(il, 0) + tensor.n_bytes
        elif match := LAYER.match(tensor.name):
            il = int(match.group(1))
            dense[il] = dense.get(il, 0) + tensor.n_bytes
        elif tensor.name.startswith("output"):
            output_bytes += tensor.n_bytes
        else:
            input_bytes += tensor.n_bytes
    return input_bytes, dense, experts, output_bytes


def _expert_repack(il_range: range) -> int:
    """Q4_0 expert matrices of CPU layers are repacked on AVX2 (rows % 8 == 0)."""
    spec = mixtral_spec("Q4_0")
    return sum(
        t.n_bytes
        for t in spec.tensors
        if (m := EXPERT.match(t.name))
        and int(m.group(1)) in il_range
        and t.ggml_type.name == "Q4_0"
    )


def test_expert_split_puts_only_the_experts_of_the_first_layers_in_ram(
    mixtral_q4_0_gguf: Path,
) -> None:
    info = read_gguf(mixtral_q4_0_gguf)
    input_bytes, dense, experts, output_bytes = _spec_bytes()
    settings = MemorySettings(n_ctx=4096, n_gpu_layers=33, n_cpu_moe=12, flash_attn=True)
    gpu, cpu = estimate_memory(info, settings, n_gpus=1, cpu_features=("avx2",)).devices
    assert gpu.weights_bytes == sum(dense.values()) + sum(experts[il] for il in range(12, 32)) + (
        output_bytes
    )
    moved = sum(experts[il] for il in range(12))
    assert cpu.weights_bytes == input_bytes + moved + _expert_repack(range(12))
    assert cpu.repack_bytes == _expert_repack(range(12))
    assert cpu.kv_bytes == 0 and gpu.kv_bytes > 0  # every layer's KV stays on the GPU


def test_layer_split_moves_whole_layers(mixtral_q4_0_gguf: Path) -> None:
    info = read_gguf(mixtral_q4_0_gguf)
    input_bytes, dense, experts, output_bytes = _spec_bytes()
    settings = MemorySettings(
        n_ctx=4096, n_gpu_layers=21, flash_attn=True
    )  # layers 12..31 + output
    estimate = estimate_memory(info, settings, n_gpus=1, cpu_features=())
    gpu, cpu = estimate.devices
    on_gpu = range(12, 32)
    assert gpu.weights_bytes == sum(dense[il] + experts[il] for il in on_gpu) + output_bytes
    assert cpu.weights_bytes == input_bytes + sum(dense[il] + experts[il] for il in range(12))
    assert cpu.kv_bytes == gpu.kv_bytes * 12 // 20  # KV follows its layer


def test_planner_picks_the_expert_split_when_it_is_faster_and_says_why(
    mixtral_q4_0_gguf: Path,
) -> None:
    info = read_gguf(mixtral_q4_0_gguf)  # 26 GB: does not fit a 24 GiB GPU
    hardware = what_if_hardware(None, vram=["24GiB"], ram="64GiB")
    plan = plan_model({"Q4_0": info}, hardware, PlanRequest(n_ctx=4096, calibrate_speed=False))
    assert plan.fits
    assert plan.n_gpu_layers == info.n_layers + 1 and 0 < plan.n_cpu_moe < info.n_layers
    note = next(r for r in plan.reasons if r.startswith("MoE:"))
    assert "chose the expert split" in note
    expert_tok_s, layer_tok_s = (float(x) for x in re.findall(r"predicted ([\d.]+) tok/s", note))
    assert expert_tok_s > layer_tok_s
    # one layer fewer of experts in RAM would not fit: the split is as small as it can be
    fewer = plan_model(
        {"Q4_0": info},
        hardware,
        PlanRequest(n_ctx=4096, n_cpu_moe=plan.n_cpu_moe - 1, calibrate_speed=False),
    )
    assert not fewer.fits


def test_plan_cli_costs_a_named_configuration(mixtral_q4_0_gguf: Path) -> None:
    runner = CliRunner()
    args = [str(mixtral_q4_0_gguf), "--vram", "24GiB", "--ram", "64GiB", "--ctx", "4096", "--json"]
    named = json.loads(runner.invoke(plan_command, [*args, "--ngl", "10"]).output)
    assert named["n_gpu_layers"] == 10 and named["n_cpu_moe"] == 0 and named["fits"]
    both = json.loads(runner.invoke(plan_command, [*args, "--ngl", "10", "--parallel", "2"]).output)
    kv = {d["device"]: d["kv"] for d in named["devices"]}
    kv_two = {d["device"]: d["kv"] for d in both["devices"]}
    assert kv_two == {device: 2 * size for device, size in kv.items()}
    assert both["predicted_tok_s"] < named["predicted_tok_s"]
    moe = json.loads(runner.invoke(plan_command, [*args, "--cpu-moe", "20"]).output)
    assert moe["n_cpu_moe"] == 20 and moe["n_gpu_layers"] == 33
