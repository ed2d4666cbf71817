"""packaging/: install.sh is valid POSIX sh, and its dry run picks the right llama.cpp build."""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO_ROOT / "packaging" / "install.sh"


def dry_run(tmp_path: Path, *args: str, path_prefix: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["sh", str(INSTALL_SH), "--dry-run", "--python", sys.executable,
         "--venv", str(tmp_path / "venv"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_install_script_syntax(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    subprocess.run([shell, "-n", str(INSTALL_SH)], check=True)


def test_dry_run_on_this_machine_picks_the_portable_cpu_build(tmp_path: Path) -> None:
    if sys.platform == "darwin" or shutil.which("nvidia-smi"):
        pytest.skip("this test expects a machine without a GPU")
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CMAKE_ARGS=-DGGML_NATIVE=OFF" in result.stdout
    assert "--force-reinstall --no-cache-dir" in result.stdout
    assert f"pip install {REPO_ROOT}" in result.stdout
    assert "dry run finished" in result.stderr
    assert not (tmp_path / "venv").exists()  # nothing was run


def test_dry_run_with_an_nvidia_gpu_picks_cuda(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-0)"\n')
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    result = dry_run(tmp_path, path_prefix=str(fake_bin))
    if sys.platform == "darwin":
        pytest.skip("Apple machines get Metal")
    assert result.returncode == 0, result.stderr
    assert "CMAKE_ARGS=-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native" in result.stdout


def test_dry_run_prebuilt_cuda_wheel_pins_and_refuses_sdists(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "--cuda-wheel", "cu124", "--llama-version", "0.3.16")
    assert result.returncode == 0, result.stderr
    assert "--only-binary=llama-cpp-python" in result.stdout
    assert "https://abetlen.github.io/llama-cpp-python/whl/cu124" in result.stdout
    assert "llama-cpp-python==0.3.16" in result.stdout
    missing_version = dry_run(tmp_path, "--cuda-wheel", "cu124")
    assert missing_version.returncode == 1
    assert "--llama-version" in missing_version.stderr


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


def test_pyinstaller_spec_is_python_and_bundles_llama_libraries() -> None:
    text = (REPO_ROOT / "packaging" / "pyinstaller" / "localchat.spec").read_text()
    ast.parse(text)
    assert 'collect_dynamic_libs("llama_cpp")' in text
    assert "*.tcss" in text and "models.toml" in text
