"""What counts as a model on disk, and odd MODEL arguments (issue 9, items 3 and 7).

``pull /etc/passwd`` used to print "on disk" and exit 0; a 5000-character name,
``owner/..`` and ``plan --type-k ../x`` ended in "internal error".  Each now gets
its documented exit code and one line.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from unittest.mock import patch

import pytest

from localchat.cli.main import main
from localchat.errors import ExitCode


def run_cli(argv: list[str], capsysbinary) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited, patch("sys.stdin", io.TextIOWrapper(io.BytesIO(b""))):
        main(argv)
    captured = capsysbinary.readouterr()
    return int(exited.value.code or 0), captured.out.decode(), captured.err.decode()


def one_line(err: str) -> str:
    assert err.startswith("localchat: error: ") and err.count("\n") == 1, err[:400]
    assert len(err) < 300, err
    return err


def not_models(tmp_path: Path) -> list[str]:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a model\n")
    candidates = ["/etc/passwd", "/proc/self/environ", str(text_file), "~root/.bashrc"]
    return [c for c in candidates if os.path.exists(os.path.expanduser(c))]


@pytest.mark.parametrize("command", ["pull", "show", "ask", "plan"])
def test_a_file_that_is_not_gguf_is_not_a_model(command: str, tmp_path: Path, capsysbinary) -> None:
    for path in not_models(tmp_path):
        argv = {"ask": ["ask", "-m", path, "hi"], "plan": ["plan", path, "--cpu-only"]}.get(
            command, [command, path]
        )
        code, out, err = run_cli(argv, capsysbinary)
        assert code == ExitCode.MODEL_NOT_FOUND, (argv, code, err)
        assert "not a model" in one_line(err) and out == ""


def test_rm_of_a_file_that_is_not_a_model(tmp_path: Path, capsysbinary) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me")
    code, _, err = run_cli(["rm", "-y", str(victim)], capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND and "not on disk" in one_line(err)
    assert victim.read_text() == "keep me"


def test_a_folder_is_a_model_only_with_config_and_weights(tmp_path: Path, capsysbinary) -> None:
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run_cli(["pull", str(tmp_path)], capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND and "not a model folder" in one_line(err)


def test_a_damaged_gguf_is_corrupt_not_missing(tmp_path: Path, capsysbinary) -> None:
    path = tmp_path / "model-Q4_K_M.gguf"
    path.write_bytes(b"GGUX" + b"\0" * 100)
    code, _, err = run_cli(["pull", str(path)], capsysbinary)
    assert code == ExitCode.CORRUPT_MODEL_FILE and "not a GGUF file" in one_line(err)


def test_a_real_gguf_path_is_on_disk(tiny_gguf: Path, capsysbinary) -> None:
    code, _, err = run_cli(["pull", str(tiny_gguf)], capsysbinary)
    assert code == 0, err


@pytest.mark.parametrize("command", ["pull", "show", "ask", "plan"])
def test_a_5000_character_model_name(command: str, capsysbinary) -> None:
    name = "a" * 5000
    argv = ["ask", "-m", name, "hi"] if command == "ask" else [command, name]
    code, _, err = run_cli(argv, capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND, err[:300]
    one_line(err)


def test_plan_with_an_unknown_cache_type(tiny_gguf: Path, capsysbinary) -> None:
    for option in ("--type-k", "--type-v"):
        code, _, err = run_cli(["plan", str(tiny_gguf), option, "../x"], capsysbinary)
        assert code == ExitCode.USAGE and "unknown KV cache type" in one_line(err)
