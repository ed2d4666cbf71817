"""``localchat plan``, ``plan_for_file``, ``choose_quant`` and the MODEL sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from localchat.catalog import load_catalog, parse_catalog
from localchat.cli.main import main
from localchat.cli.plan_cmd import plan as plan_command
from localchat.engine import settings_for_plan
from localchat.errors import ExitCode
from localchat.planner import choose_quant, plan_for_file, plan_reference, what_if_hardware
from localchat.reference import parse_model_ref
from tests.fixtures.gguf_files import RangeServer, llama70b_spec, serve_file, write_gguf

GiB = 1 << 30


def test_plan_for_file_gemma(gemma_path: Path) -> None:
    hw = what_if_hardware(ram=16 * GiB, cpu_only=True)
    plan = plan_for_file(gemma_path, hw)
    assert (plan.quant, plan.n_ctx, plan.n_gpu_layers, plan.fits) == ("Q4_K_M", 8192, 0, True)
    assert plan_for_file(gemma_path, hw, n_ctx=32768).n_ctx == 32768
    settings = settings_for_plan(plan, gemma_path)
    assert settings.model_path == gemma_path and settings.n_ctx == 8192


def test_choose_quant_from_catalog_figures() -> None:
    entry = load_catalog().get("huozi3")
    assert entry is not None and entry.gguf is not None
    sizes = {q: qf.size_bytes for q, qf in entry.gguf.quants.items()}
    on_24 = what_if_hardware(vram=[24 * GiB], ram=64 * GiB)
    on_80 = what_if_hardware(vram=[80 * GiB], ram=64 * GiB)
    # Q4_0 with the experts of a few layers in RAM is predicted well above 10 tok/s and
    # loses far less than Q2_K (issue 19: quality first, the speed target is a floor)
    assert choose_quant(sizes, entry.arch, on_24, family=entry.family) == "Q4_0"
    assert choose_quant(sizes, entry.arch, on_80, family=entry.family) == "Q4_0"
    # without architecture figures (no speed model): the best file that fits the VRAM
    # with a margin
    assert choose_quant(sizes, None, on_24) == "Q2_K"
    assert choose_quant(sizes, None, on_80) == "Q4_0"


def test_cli_plan_local_json(tiny_gguf: Path) -> None:
    result = CliRunner().invoke(
        plan_command, [str(tiny_gguf), "--json", "--cpu-only", "--ram", "16GiB"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["n_gpu_layers"] == 0 and doc["n_layers"] == 4 and doc["quant"] == "Q8_0"
    assert doc["devices"][-1]["device"] == "CPU"


def test_cli_plan_what_if_text(tiny_gguf: Path) -> None:
    result = CliRunner().invoke(
        plan_command, [str(tiny_gguf), "--vram", "8GiB", "--vram", "8GiB", "--ctx", "1024"]
    )
    assert result.exit_code == 0, result.output
    assert "5/5 layers on GPU" in result.output and "GPU1" in result.output


def test_cli_corrupt_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(bad), "--cpu-only", "--ram", "8GiB"])
    assert exit_info.value.code == ExitCode.CORRUPT_MODEL_FILE
    err = capsys.readouterr().err.strip()
    assert err.startswith("localchat: error:") and "\n" not in err


def test_cli_does_not_fit_exit_code(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "huozi3", "--offline", "--cpu-only", "--ram", "8GiB"])
    assert exit_info.value.code == ExitCode.DOES_NOT_FIT
    captured = capsys.readouterr()
    assert "models.toml" in captured.out and "DOES NOT FIT" in captured.out


def test_offline_catalog_model_uses_recorded_figures() -> None:
    ref = parse_model_ref("nemotron-70b:Q4_K_M", load_catalog())
    plan = plan_reference(ref, what_if_hardware(vram=[48 * GiB], ram=64 * GiB), offline=True)
    assert plan.quant == "Q4_K_M" and plan.source == "catalog figures"
    assert any("models.toml" in reason for reason in plan.reasons)


CATALOG = """
default_model = "big"
[models.big]
family = "llama3.1"
description = "test"
chat_format = "gguf"
arch = { n_layers = 80, n_embd = 8192, n_head = 64, n_head_kv = 8, head_dim = 128, n_ff = 28672, n_vocab = 128256, n_ctx_train = 131072 }
[models.big.gguf]
repo = "me/Big-GGUF"
quants.Q2_K = { files = ["Big-Q2_K.gguf"], size_bytes = 26_300_000_000 }
quants.Q4_K_M = { files = ["Big-Q4_K_M.gguf"], size_bytes = 42_500_000_000 }
"""


def test_hub_model_reads_remote_headers(gguf_range_server: RangeServer, tmp_path: Path) -> None:
    for quant in ("Q2_K", "Q4_K_M"):
        path = write_gguf(tmp_path / f"{quant}.gguf", llama70b_spec(quant, with_tokens=False))[0]
        serve_file(gguf_range_server, "me/Big-GGUF", f"Big-{quant}.gguf", path)
    ref = parse_model_ref("big", parse_catalog(CATALOG))
    plan = plan_reference(ref, what_if_hardware(vram=[48 * GiB], ram=64 * GiB))
    assert plan.quant == "Q4_K_M" and plan.n_gpu_layers == 81
    assert plan.source == "remote header"
    assert any("remote GGUF header of Q2_K, Q4_K_M" in reason for reason in plan.reasons)


def test_hub_repo_outside_the_catalog_is_listed(
    gguf_range_server: RangeServer, tmp_path: Path
) -> None:
    for quant in ("Q2_K", "Q4_K_M"):
        path = write_gguf(tmp_path / f"{quant}.gguf", llama70b_spec(quant, with_tokens=False))[0]
        serve_file(gguf_range_server, "someone/Other-GGUF", f"Other-{quant}.gguf", path)
    result = CliRunner().invoke(
        plan_command, ["someone/Other-GGUF", "--vram", "24GiB", "--ram", "64GiB", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["quant"] == "Q2_K" and doc["source"] == "remote header"
    assert doc["files"] == ["Other-Q2_K.gguf"]
