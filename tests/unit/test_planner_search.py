"""Plans for generated 70B / Mixtral headers on the profile table, checked by hand.

The hand computations below use only the tensor shapes and GGML block sizes of the
fixture files and llama.cpp's rules (fitting.md); they do not call the planner.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.engine import settings_for_plan
from localchat.errors import ConfigError, DoesNotFit, ModelNotFound
from localchat.gguf import read_gguf
from localchat.planner import PlanRequest, plan_model, what_if_hardware
from localchat.planner.profiles import apple_machine, parse_size
from tests.fixtures.gguf_files import QUANTS_70B, ModelSpec, llama70b_spec, mixtral_spec, write_gguf

GiB = 1 << 30


@pytest.fixture(scope="module")
def specs_70b() -> dict[str, ModelSpec]:
    return {q: llama70b_spec(q, with_tokens=False) for q in QUANTS_70B}


@pytest.fixture(scope="module")
def infos_70b(tmp_path_factory: pytest.TempPathFactory, specs_70b):
    folder = tmp_path_factory.mktemp("l70")
    return {q: read_gguf(write_gguf(folder / f"L-{q}.gguf", s)[0]) for q, s in specs_70b.items()}


@pytest.fixture(scope="module")
def infos_mixtral(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("mx")
    return {
        q: read_gguf(write_gguf(folder / f"mx-{q}.gguf", mixtral_spec(q, with_tokens=False))[0])
        for q in ("Q2_K", "Q4_0")
    }


def _layer_bytes(spec: ModelSpec, il: int) -> int:
    return sum(t.n_bytes for t in spec.tensors if t.name.startswith(f"blk.{il}."))


def _output_bytes(spec: ModelSpec) -> int:
    return sum(t.n_bytes for t in spec.tensors if t.name.startswith("output"))


LOGITS_70B = 4 * 512 * (128256 + 2 * 8192)  # compute peak: f32 logits for a 512-token ubatch


def test_cell_48gb_gpu_runs_q4_k_m_fully(infos_70b, specs_70b) -> None:
    hw = what_if_hardware(vram=[48 * GiB], ram=64 * GiB)
    plan = plan_model(infos_70b, hw, model_name="70B")
    spec = specs_70b["Q4_K_M"]
    weights = sum(_layer_bytes(spec, il) for il in range(80)) + _output_bytes(spec)
    kv = 80 * 8192 * (8 * 128 + 8 * 128) * 2  # f16 K and V
    reserve = int(48 * GiB * 0.05)  # max(1 GiB, 5 %)
    gpu_total = weights + kv + LOGITS_70B + reserve
    assert gpu_total <= 48 * GiB
    assert (plan.quant, plan.n_gpu_layers, plan.n_ctx, plan.flash_attn) == (
        "Q4_K_M",
        81,
        8192,
        True,
    )
    assert plan.devices[0].total_bytes == gpu_total
    # Q5_K_M would need more than 48 GiB even at the 4096 floor context
    q5 = specs_70b["Q5_K_M"]
    q5_weights = sum(_layer_bytes(q5, il) for il in range(80)) + _output_bytes(q5)
    assert q5_weights + kv // 2 + LOGITS_70B + reserve > 48 * GiB
    assert "chose Q4_K_M" in " ".join(plan.reasons)


def test_cell_24gb_gpu_q2_k_layers(infos_70b, specs_70b) -> None:
    hw = what_if_hardware(vram=[24 * GiB], ram=64 * GiB)
    plan = plan_model(infos_70b, hw, PlanRequest(quant="Q2_K"), model_name="70B")
    spec = specs_70b["Q2_K"]
    layer = _layer_bytes(spec, 0)  # the Q2_K mix is the same in every layer
    assert all(_layer_bytes(spec, il) == layer for il in range(80))
    kv_layer_4096 = 4096 * 2048 * 2
    reserve = int(24 * GiB * 0.05)
    # full offload does not fit even at the 4096-token floor, so layers are dropped there;
    # with n_gpu_layers = N the GPU holds N - 1 blocks and the output layer, and its compute
    # buffer also takes a copy of one CPU layer's weights (large batches run on the GPU)
    full = 80 * layer + _output_bytes(spec) + 80 * kv_layer_4096 + LOGITS_70B + reserve
    assert full > 24 * GiB

    def gpu_need(n_gpu_layers: int) -> int:
        blocks = n_gpu_layers - 1
        return blocks * (layer + kv_layer_4096) + _output_bytes(spec) + LOGITS_70B + layer + reserve

    most = max(n for n in range(1, 81) if gpu_need(n) <= 24 * GiB)
    assert (plan.n_gpu_layers, plan.n_ctx) == (most, 4096)
    assert most == 70
    assert "70 of 81 layers on GPU" in plan.reasons[0]


def test_cell_apple_64gb_speed_target_picks_iq4_xs(infos_70b) -> None:
    plan = plan_model(infos_70b, apple_machine(64 * GiB), model_name="70B")
    assert (plan.quant, plan.n_gpu_layers, plan.n_ctx) == ("IQ4_XS", 81, 8192)
    q4 = next(a for a in plan.alternatives if a["quant"] == "Q4_K_M")
    # Q4_K_M also fits the Metal budget (0.7 x 64 GiB) but reads ~43 GB per token:
    # 546 GB/s x 0.75 / 43 GB = 9.5 tok/s, under the 10 tok/s target
    assert q4["n_gpu_layers"] == 81 and q4["predicted_tok_s"] < 10 <= plan.predicted_tok_s


def test_cell_cpu_only_16gb_does_not_fit_mixtral(infos_mixtral) -> None:
    hw = what_if_hardware(ram=16 * GiB, cpu_only=True)
    plan = plan_model(infos_mixtral, hw, model_name="huozi3")
    # RAM budget 16 GiB x 0.9 - 1 GiB = 13.4 GiB < 17.1 GB of Q2_K weights
    assert infos_mixtral["Q2_K"].weights_bytes > 16 * GiB * 0.9 - GiB
    assert not plan.fits and plan.n_gpu_layers == 0
    with pytest.raises(DoesNotFit):
        plan.raise_if_not_fits()


def test_cell_cpu_only_64gb_mixtral_fastest(infos_mixtral) -> None:
    plan = plan_model(infos_mixtral, what_if_hardware(ram=64 * GiB, cpu_only=True))
    assert (plan.quant, plan.n_gpu_layers, plan.n_ctx, plan.flash_attn) == ("Q2_K", 0, 8192, False)
    assert "fastest" in " ".join(plan.reasons)


def test_two_gpus_split_by_free_memory(infos_70b) -> None:
    plan = plan_model(infos_70b, what_if_hardware(vram=[24 * GiB, 24 * GiB], ram=64 * GiB))
    assert plan.quant == "Q4_K_M" and plan.n_gpu_layers == 81
    assert plan.tensor_split == (0.5, 0.5)
    assert all(d.total_bytes <= 24 * GiB for d in plan.devices[:2])


def test_load_settings_and_json(infos_70b, tmp_path: Path) -> None:
    plan = plan_model(infos_70b, what_if_hardware(vram=[80 * GiB], ram=128 * GiB))
    settings = settings_for_plan(plan, tmp_path / "m.gguf")
    assert (settings.n_gpu_layers, settings.n_ctx, settings.flash_attn) == (81, 8192, True)
    doc = plan.to_json()
    for key in (
        "model",
        "quant",
        "files",
        "n_layers",
        "n_gpu_layers",
        "n_ctx",
        "type_k",
        "type_v",
        "flash_attn",
        "devices",
        "predicted_tok_s",
        "reasons",
    ):
        assert key in doc
    assert set(doc["devices"][0]) >= {"weights", "kv", "compute", "reserve", "total"}


def test_requests_are_checked(infos_70b) -> None:
    hw = what_if_hardware(vram=[24 * GiB], ram=64 * GiB)
    with pytest.raises(ModelNotFound, match="Q9"):
        plan_model(infos_70b, hw, PlanRequest(quant="Q9"))
    with pytest.raises(ConfigError):
        plan_model(infos_70b, hw, PlanRequest(type_v="q8_0", flash_attn=False))
    fixed = plan_model(
        infos_70b, hw, PlanRequest(quant="q2_k", n_ctx=2048, type_k="q8_0", type_v="q8_0")
    )
    assert (fixed.quant, fixed.n_ctx, fixed.flash_attn) == ("Q2_K", 2048, True)


def test_parse_size() -> None:
    assert parse_size("24GiB") == 24 * GiB
    assert parse_size("24GB") == 24 * 10**9
    assert parse_size("24") == 24 * GiB
    assert parse_size("1.5 tb") == 1_500_000_000_000
    for bad in ("", "lots", "-3GB", "12XB"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_retry_backs_off_gpu_layers(infos_70b) -> None:
    plan = plan_model(infos_70b, what_if_hardware(vram=[48 * GiB], ram=64 * GiB))
    assert plan.n_gpu_layers == 81
    layers = [plan.retry_gpu_layers(n) for n in (1, 2, 3, 4)]
    assert layers == [72, 63, 54, None]  # 81 - 9 per attempt, then give up
