"""``localchat --help`` and ``localchat ask --help`` stay fast: they load no backend library,
no UI toolkit and none of the model stack (``localchat.services`` loads its parts on use)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("llama_cpp", "textual", "torch", "transformers", "huggingface_hub")
MODEL_STACK = ("localchat.planner", "localchat.hub", "localchat.store", "localchat.services.")

PROBE = """
import json, sys
from localchat.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_after(argv: list[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Usage: localchat" in result.stdout
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["ask", "--help"], ["plan", "--help"]])
def test_help_loads_nothing_heavy(argv: list[str]) -> None:
    loaded = modules_after(argv)
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert not [m for m in loaded if m.startswith(MODEL_STACK)]
