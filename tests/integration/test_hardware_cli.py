"""``localchat hw`` and ``localchat doctor`` for real on this machine (no GPU here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.hardware import amx, detect_hardware, detect_llama_build

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("llama_cpp", "pynvml", "textual", "numpy")


def run_localchat(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "localchat", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def test_hw_prints_the_table_and_nothing_on_stderr() -> None:
    result = run_localchat("hw")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # llama.cpp's log must not reach the terminal
    for label in ("CPU", "RAM", "GPUs", "llama.cpp"):
        assert label in result.stdout


def test_hw_json_has_the_stable_fields() -> None:
    result = run_localchat("hw", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cpu"]["logical_cores"] >= 1
    assert data["ram_total_bytes"] > data["ram_available_bytes"] > 0
    assert isinstance(data["gpus"], list)
    assert data["cpu"]["bandwidth_bytes_per_s"] > 0
    if detect_llama_build() is not None:
        assert data["build"]["version"]
        assert any(device["kind"] == "cpu" for device in data["build"]["device_memory"])


def test_hw_without_build_does_not_import_heavy_modules() -> None:
    result = run_localchat("hw", "--no-build", python_flags=("-X", "importtime"))
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "llama_cpp" not in imported
    assert "textual" not in imported


def test_importing_the_hardware_package_is_light() -> None:
    code = (
        f"import sys, localchat.hardware; print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_doctor_runs_on_this_machine() -> None:
    result = run_localchat("doctor")
    assert result.stderr == ""
    lines = result.stdout.strip().splitlines()
    checks = lines[:-1]
    assert checks and all(line.startswith(("ok ", "PROBLEM ")) for line in checks)
    has_problem = any(line.startswith("PROBLEM") for line in checks)
    assert result.returncode == (1 if has_problem else 0)
    assert "Traceback" not in result.stdout


def test_real_llama_build_capabilities(capfd: pytest.CaptureFixture[str]) -> None:
    build = detect_llama_build()
    if build is None:
        pytest.skip("llama-cpp-python is not installed")
    assert build.version
    cpu_devices = [device for device in build.device_memory if device.kind == "cpu"]
    assert cpu_devices and cpu_devices[0].total_bytes > 0
    if os.uname().machine == "x86_64":
        assert "AVX2" in build.cpu_features
    assert capfd.readouterr().err == ""


def test_amx_probe_on_this_machine() -> None:
    """Where CPUID does not advertise AMX, a real tilezero must SIGILL in the child only."""
    status = amx.detect_amx(execute=True)
    if status is None:
        pytest.skip("not Linux x86-64")
    executes = amx.tilezero_executes()
    if not status.cpuid_advertises:
        assert executes is False
        assert not status.usable and not status.trap
    else:
        assert status.executes is executes


def test_detect_hardware_with_everything() -> None:
    hardware = detect_hardware(include_build=True, measure_bandwidth=True, probe_amx=True)
    assert hardware.cpu.bandwidth_bytes_per_s and hardware.cpu.bandwidth_bytes_per_s > 1e8
    assert hardware.cpu.bandwidth_source.startswith(("measured", "apple"))


def test_broken_llama_cpp_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A llama_cpp whose libraries fail to load (shadowed by a fake package here)."""
    fake = tmp_path / "llama_cpp"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise OSError("libllama.so: cannot open shared object file")\n'
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    doctor = subprocess.run(
        [sys.executable, "-m", "localchat", "doctor"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert doctor.returncode == 1
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert "does not load (libllama.so: cannot open shared object file)" in doctor.stdout
    hw = subprocess.run(
        [sys.executable, "-m", "localchat", "hw"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert hw.returncode == 0
    assert "note       llama-cpp-python is installed but does not load" in hw.stdout
