"""Quants chosen for quality, not only for fit (issue 19).

The planner runs on generated GGUF headers with the real tensor shapes and quant mixes
of Mixtral-8x7B (huozi3) and Llama-3.1-70B, on what-if hardware (no GPU exists on the
test machines).  Quality figures are the rows of llama.cpp's perplexity README as copied
into ``localchat/planner/quality_data.toml``; the percentages asserted below were worked
out by hand from those rows (ΔPPL / (PPL − ΔPPL)), not by calling the planner.
"""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from localchat.cli.plan_cmd import plan as plan_command
from localchat.gguf import read_gguf
from localchat.gguf.info import GgufInfo
from localchat.gguf.quants import KNOWN_QUANTS
from localchat.planner import PlanRequest, plan_model, what_if_hardware
from localchat.planner.quality import (
    QualityLoss,
    approx_params,
    load_table,
    losses_for,
    near_tie,
    quality_for,
    quality_order,
)
from tests.fixtures.gguf_files import llama70b_spec, mixtral_spec, write_gguf

GiB = 1 << 30
FIXED = PlanRequest(calibrate_speed=False)  # modelled speeds only, whatever this machine ran


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GgufInfo]:
    folder = tmp_path_factory.mktemp("mx")
    return {
        q: read_gguf(write_gguf(folder / f"mx-{q}.gguf", mixtral_spec(q, with_tokens=False))[0])
        for q in ("Q2_K", "Q4_0")
    }


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GgufInfo]:
    folder = tmp_path_factory.mktemp("l70q")
    quants = ("Q2_K", "IQ4_XS", "Q4_K_M", "Q4_0", "Q4_1", "Q8_0")
    return {
        q: read_gguf(write_gguf(folder / f"L-{q}.gguf", llama70b_spec(q, with_tokens=False))[0])
        for q in quants
    }


# --------------------------------------------------------------------------- the data


def test_rows_are_transcribed_consistently() -> None:
    """Every row's PPL − ΔPPL is FP16's perplexity (6.23163, to the README's 6 decimals),
    and the rows keep the README's order: sorted by KL divergence."""
    table = load_table()
    for row in table.rows:
        assert abs(row.ppl - row.dppl - 6.231635) < 3e-6, row
        assert 0 < row.kld_se < row.kld, row
    klds = [row.kld for row in table.rows]
    assert klds == sorted(klds)


def test_every_known_quant_type_has_a_measured_row() -> None:
    for quant in KNOWN_QUANTS:
        for imatrix in (False, True):
            loss = quality_for(quant, imatrix=imatrix)
            assert loss is not None, quant
            expected = "reference" if quant in ("F32", "BF16", "F16") else "measured"
            assert loss.basis == expected, quant


def test_imatrix_rows_for_repos_with_i_quants() -> None:
    plain = losses_for({"Q2_K": None, "Q4_0": None})
    with_iq = losses_for({"Q2_K": None, "IQ4_XS": None})
    assert plain["Q2_K"] is not None and with_iq["Q2_K"] is not None
    assert (plain["Q2_K"].kld, plain["Q2_K"].imatrix) == (0.445132, "none")
    assert (with_iq["Q2_K"].kld, with_iq["Q2_K"].imatrix) == (0.332223, "WT 10m")
    # Q4_0 was measured without an imatrix only: that row either way
    q4_0 = losses_for({"Q4_0": None, "IQ2_M": None})["Q4_0"]
    assert q4_0 is not None and q4_0.kld == 0.07194


def test_quality_order_follows_the_measurements_not_the_name() -> None:
    # by file size (the old order) Q3_K_S came before IQ3_XS; measured, it loses the most
    assert quality_order(dict.fromkeys(("Q3_K_S", "IQ3_XXS", "IQ3_XS"), 0)) == [
        "IQ3_XS",
        "IQ3_XXS",
        "Q3_K_S",
    ]
    assert quality_order(dict.fromkeys(("MYSTERY_Q", "Q2_K", "F16"), 0)) == [
        "F16",
        "Q2_K",
        "MYSTERY_Q",  # no figure and no header to place it by: last
    ]


def test_noise_is_the_spread_between_importance_matrices() -> None:
    spread = (2.293527 - 2.211278) / 2.211278  # IQ1_S, WT 1m vs WT 10k: the widest
    assert math.isclose(load_table().spread_ratio, spread)
    q4_0, q4_1 = quality_for("Q4_0", imatrix=False), quality_for("Q4_1", imatrix=False)
    q5_k_s, q5_1 = quality_for("Q5_K_S", imatrix=False), quality_for("Q5_1", imatrix=False)
    assert q4_0 and q4_1 and q5_k_s and q5_1
    assert near_tie(q4_0, q4_1)  # 0.071940 vs 0.071683
    assert not near_tie(q5_k_s, q5_1)  # 0.016595 vs 0.018045: 8 %, well past the noise

    def loss(kld: float, kld_se: float = 0.0) -> QualityLoss:
        return QualityLoss("X", kld, kld_se, 0.0, "measured")

    edge = 1.0 / (1.0 - spread)  # |a − b| == spread × max(a, b)
    assert near_tie(loss(1.0), loss(edge * 0.999))
    assert not near_tie(loss(1.0), loss(edge * 1.001))
    # with large uncertainties, twice the combined uncertainty is the noise instead
    assert near_tie(loss(1.0, 0.1), loss(1.28, 0.1))
    assert not near_tie(loss(1.0, 0.1), loss(1.29, 0.1))


def test_an_unpublished_type_is_placed_by_bits_per_weight(llama70b) -> None:
    info = llama70b["Q4_K_M"]
    # the header's shapes give Llama-3.1-70B's 70.55 B parameters
    assert abs(approx_params(info) - 70.55e9) / 70.55e9 < 0.002
    estimate = quality_for("Q4_K_L", info, imatrix=True)
    q4_k_m = quality_for("Q4_K_M", imatrix=True)
    iq4_nl = quality_for("IQ4_NL", imatrix=True)
    assert estimate is not None and q4_k_m is not None and iq4_nl is not None
    assert estimate.basis == "estimated"
    assert q4_k_m.kld <= estimate.kld <= iq4_nl.kld  # 4.8 bits: between the two
    assert estimate.words().startswith("~+") and "estimate" in estimate.words(detail=True)
    assert quality_for("Q4_K_L", None, imatrix=True) is None


# --------------------------------------------------------------------------- the policy


def test_huozi3_on_24_gib_takes_q4_0_with_the_experts_split(mixtral) -> None:
    hw = what_if_hardware(vram=[24 * GiB], ram=64 * GiB)
    plan = plan_model(mixtral, hw, FIXED, model_name="huozi3")
    q2_k = next(a for a in plan.alternatives if a["quant"] == "Q2_K")
    # Q2_K fits whole and is much faster, but both clear the 10 tok/s floor
    assert q2_k["fits"] and q2_k["n_gpu_layers"] == 33 and q2_k["n_cpu_moe"] == 0
    assert q2_k["predicted_tok_s"] > plan.predicted_tok_s >= 10
    assert (plan.quant, plan.n_gpu_layers) == ("Q4_0", 33) and plan.n_cpu_moe > 0
    # no i-quants in the repo: the plain rows, Q4_0 +7.52 %, Q2_K +56.48 %
    assert plan.quality is not None and q2_k["quality"] is not None
    assert round(plan.quality.ppl_increase_pct, 2) == 7.52
    assert round(q2_k["quality"]["ppl_increase_pct"], 2) == 56.48
    choice = next(r for r in plan.reasons if r.startswith("chose "))
    assert choice.startswith("chose Q4_0: the best quality predicted at ≥ 10 tok/s")
    for text in ("+7.5 % perplexity", "+56.5 % perplexity", "Q2_K is faster"):
        assert text in choice
    assert f"{plan.predicted_tok_s:.0f} tok/s" in choice
    assert f"{q2_k['predicted_tok_s']:.0f} tok/s" in choice
    assert any("no mixture-of-experts model was measured" in r for r in plan.reasons)


def test_a_near_tie_goes_to_the_faster(llama70b) -> None:
    both = {q: llama70b[q] for q in ("Q4_0", "Q4_1")}
    plan = plan_model(both, what_if_hardware(vram=[80 * GiB], ram=128 * GiB), FIXED)
    q4_1 = plan.alternatives[0]
    assert q4_1["quant"] == "Q4_1" and q4_1["predicted_tok_s"] >= 10
    assert plan.quality is not None
    assert q4_1["quality"]["kld"] < plan.quality.kld  # Q4_1 measured (slightly) better
    assert plan.quant == "Q4_0" and plan.predicted_tok_s > q4_1["predicted_tok_s"]
    choice = next(r for r in plan.reasons if r.startswith("chose "))
    assert choice.startswith("chose Q4_0: as good as Q4_1 within the data's noise")


def test_better_quality_wins_when_it_clears_the_target(llama70b) -> None:
    plan = plan_model(llama70b, what_if_hardware(vram=[48 * GiB], ram=64 * GiB), FIXED)
    iq4_xs = next(a for a in plan.alternatives if a["quant"] == "IQ4_XS")
    assert plan.quant == "Q4_K_M" and plan.predicted_tok_s >= 10
    assert iq4_xs["predicted_tok_s"] > plan.predicted_tok_s  # faster, but loses more
    choice = next(r for r in plan.reasons if r.startswith("chose "))
    assert "IQ4_XS is faster" not in choice  # IQ4_XS is not the fastest: Q2_K is
    assert "Q2_K is faster" in choice


def test_nothing_reaches_the_target_so_the_fastest(llama70b) -> None:
    plan = plan_model(llama70b, what_if_hardware(vram=[24 * GiB], ram=64 * GiB), FIXED)
    fitting = [a for a in plan.alternatives if a["fits"]]
    assert plan.predicted_tok_s < 10 and all(a["predicted_tok_s"] < 10 for a in fitting)
    assert plan.quant == "Q2_K"
    assert all(a["predicted_tok_s"] <= plan.predicted_tok_s for a in fitting)
    choice = next(r for r in plan.reasons if r.startswith("chose "))
    assert choice.startswith("chose Q2_K: no quant reaches 10 tok/s, so the fastest plan")
    assert "+38.8 % perplexity" in choice  # i-quants in the repo: Q2_K's imatrix row


# --------------------------------------------------------------------------- the output


def test_plan_cli_shows_quality_beside_size_and_speed() -> None:
    args = ["huozi3", "--offline", "--vram", "24GiB", "--ram", "64GiB"]
    result = CliRunner().invoke(plan_command, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("quant "))
    assert lines[header].endswith("loss vs F16, Llama-3-8B")
    q4_0, q2_k = lines[header + 1], lines[header + 2]
    assert q4_0.startswith("* Q4_0") and "26.6 GB" in q4_0 and "+7.5 % ppl, KLD 0.0719" in q4_0
    assert q2_k.startswith("  Q2_K") and "17.4 GB" in q2_k and "+56.5 % ppl, KLD 0.4451" in q2_k
    assert all(len(line) <= 80 for line in lines[header : header + 3])
    candidate = next(line for line in lines if line.startswith("- Q2_K: 17.4 GB"))
    assert candidate.endswith("+56.5 % perplexity (on Llama-3-8B, +8.8 % on Llama-2-70B)")
    assert any(line.startswith("- quality figures: ") for line in lines)


def test_plan_json_carries_quality() -> None:
    args = ["huozi3", "--offline", "--vram", "24GiB", "--ram", "64GiB", "--json"]
    result = CliRunner().invoke(plan_command, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["quant"] == "Q4_0" and doc["weights"] > 0 and doc["chosen_by"] == "quality"
    assert doc["quality"]["kld"] == 0.07194 and doc["quality"]["basis"] == "measured"
    assert doc["quality"]["reference_model"] == "Llama-3-8B"
    assert "perplexity/README.md" in doc["quality"]["source"]
    (q2_k,) = doc["alternatives"]
    assert q2_k["quality"]["kld"] == 0.445132 and q2_k["quality"]["imatrix"] == "none"
