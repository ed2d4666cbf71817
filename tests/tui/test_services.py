"""The app's adapters to the planner, store and hub (no Textual)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from localchat.tui import services
from localchat.tui.fake import ScriptedModel
from localchat.tui.screens.loaded import loaded_rows


@dataclass
class FakeDevice:
    device: str
    total_bytes: int


@dataclass
class FakePlan:
    fits: bool = True
    n_gpu_layers: int = 0
    n_layers: int = 32
    quant: str = "Q4_K_M"
    n_ctx: int = 8192
    predicted_tok_s: float = 12.0
    devices: tuple = (FakeDevice("GPU0", 6_000_000_000), FakeDevice("CPU", 2_000_000_000))
    reasons: list = field(default_factory=lambda: ["chose Q4_K_M: the best quality that fits"])


@pytest.mark.parametrize(
    "plan, badge",
    [
        (FakePlan(), "CPU only"),
        (FakePlan(n_gpu_layers=20), "partial 20/32"),
        (FakePlan(n_gpu_layers=33), "full GPU"),
        (FakePlan(fits=False), "does not fit"),
    ],
)
def test_fit_badges(plan: FakePlan, badge: str) -> None:
    assert services.fit_from_plan(plan).badge == badge


def test_describe_plan() -> None:
    text = services.describe_plan(FakePlan(n_gpu_layers=20))
    assert "ctx 8192 · GPU layers 20/32" in text
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
    assert rows["layers on GPU"] == "all 18 + output"
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
