"""The app's adapters to the planner, store and hub (no Textual)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from localchat.planner import DeviceMemory, Plan
from localchat.tui import services
from localchat.tui.fake import ScriptedModel
from localchat.tui.screens.loaded import loaded_rows


def make_plan(**changes: Any) -> Plan:
    """A real planner ``Plan`` (the app reads it as the CLI does)."""
    plan = Plan(
        model="m",
        quant="Q4_K_M",
        files=("m.gguf",),
        n_layers=32,
        n_gpu_layers=0,
        n_ctx=8192,
        type_k="f16",
        type_v="f16",
        flash_attn=False,
        n_batch=512,
        n_ubatch=512,
        devices=(
            DeviceMemory("GPU0", 5_000_000_000, 800_000_000, 200_000_000),
            DeviceMemory("CPU", 2_000_000_000, 0, 0),
        ),
        budgets_bytes={},
        predicted_tok_s=12.0,
        fits=True,
        source="header",
        reasons=["chose Q4_K_M: the best quality that fits"],
    )
    return replace(plan, **changes)


@pytest.mark.parametrize(
    "plan, badge",
    [
        (make_plan(), "CPU only"),
        (make_plan(n_gpu_layers=20), "partial 20/33"),  # as `localchat plan` counts
        (make_plan(n_gpu_layers=32), "partial 32/33"),  # the output layer is still on the CPU
        (make_plan(n_gpu_layers=33), "full GPU"),
        (make_plan(fits=False), "does not fit"),
    ],
)
def test_fit_badges(plan: Plan, badge: str) -> None:
    assert services.fit_from_plan(plan).badge == badge


def test_describe_plan() -> None:
    text = services.describe_plan(make_plan(n_gpu_layers=20))
    assert "ctx 8192 · GPU layers 20/33" in text  # the same count as `localchat plan`
    assert "GPU0: 6.0 GB" in text and "about 12 tok/s" in text
    assert "- chose Q4_K_M" in text
    assert "could not read" in services.describe_plan(None)


def test_unknown_fit_without_hardware() -> None:
    assert services.fit_for("gemma-3-270m:Q4_K_M", None).badge == "unknown"


def test_formatting() -> None:
    assert services.format_size(None) == "?"
    assert services.format_size(1_500_000) == "1.5 MB"
    assert services.format_size(42_500_000_000) == "42.5 GB"
    assert services.format_eta(None) == "--:--"
    assert services.format_eta(75) == "01:15"
    assert services.format_eta(7300) == "2:01:40"


def test_catalog_rows_cover_every_quant() -> None:
    rows = services.catalog_rows()
    keys = {row.key for row in rows}
    assert "gemma-3-270m:Q4_K_M" in keys
    assert all(row.fit.badge == "unknown" for row in rows)


def test_loaded_rows_from_a_plan_summary() -> None:
    model = ScriptedModel()
    model.plan_summary = {
        "n_gpu_layers": 19,
        "n_layers": 18,
        "devices": [{"device": "GPU0", "total": 400_000_000}, {"device": "CPU", "total": 0}],
        "load_s": 1.234,
    }
    rows = dict(loaded_rows(model))
    assert rows["layers on GPU"] == "19/19"  # the count `localchat plan` shows
    assert rows["memory GPU0"] == "400.0 MB"
    assert rows["load time"] == "1.23 s"


def test_importing_the_tui_package_does_not_import_textual() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code = (
        "import sys, localchat.tui, localchat.history, localchat.settings;"
        "print('textual' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
