"""``localchat doctor``'s checks, fed with machines we do not have.

There is no GPU here and the CPU has no AMX, so the NVIDIA, Apple and AMX
cases run on injected ``Facts``; one real run on this machine is in
tests/integration/test_hardware_cli.py.
"""

from __future__ import annotations

from pathlib import Path

from localchat.hardware.types import AmxStatus, GpuInfo, LlamaBuildInfo
from localchat.services import doctor
from localchat.services.doctor import Facts

GIB = 1024**3
PORTABLE = ("SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "LLAMAFILE", "OPENMP")
NATIVE_AMX = (*PORTABLE, "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8")
X86_FLAGS = ("sse3", "ssse3", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512_vnni")
RTX_4090 = GpuInfo(0, "NVIDIA GeForce RTX 4090", "nvidia", 24 * GIB, 23 * GIB, 1008e9, "nvml")


def cpu_build(features: tuple[str, ...] = PORTABLE, offload: bool = False) -> LlamaBuildInfo:
    return LlamaBuildInfo(
        version="0.3.36",
        supports_gpu_offload=offload,
        devices=("CUDA0", "CPU") if offload else ("CPU",),
        cpu_features=features,
    )


def healthy(**changes: object) -> Facts:
    base = {
        "python": "/venv/bin/python",
        "build": cpu_build(),
        "cpu_flags": X86_FLAGS,
        "cpu_flags_known": True,
        "amx": AmxStatus(False, False, False),
        "cache_dir": Path("/cache"),
        "disk_free_bytes": 100 * GIB,
        "default_model": "qwen2.5-0.5b",
        "default_model_bytes": 398_000_000,
    }
    base.update(changes)
    return Facts(**base)  # type: ignore[arg-type]


def problems(facts: Facts) -> list[doctor.CheckResult]:
    return [result for result in doctor.run_checks(facts) if not result.ok]


def test_healthy_cpu_machine_has_no_problems() -> None:
    results = doctor.run_checks(healthy())
    assert results and all(result.ok for result in results)
    assert any("portable" in result.message for result in results)


def test_cpu_only_build_on_nvidia_machine_gives_the_cuda_reinstall_command() -> None:
    [problem] = problems(healthy(nvidia_gpus=(RTX_4090,)))
    assert "built without CUDA" in problem.message
    assert "RTX 4090" in problem.message
    assert (
        'CMAKE_ARGS="-DGGML_CUDA=on" /venv/bin/python -m pip install --upgrade '
        "--force-reinstall --no-cache-dir llama-cpp-python" in problem.fix
    )
    assert "--only-binary=llama-cpp-python" in problem.fix
    assert "https://abetlen.github.io/llama-cpp-python/whl/cu124" in problem.fix
    assert '"llama-cpp-python==0.3.36"' in problem.fix
    assert "\n" not in problem.line()


def test_cuda_build_on_nvidia_machine_is_fine() -> None:
    facts = healthy(nvidia_gpus=(RTX_4090,), build=cpu_build(offload=True))
    assert problems(facts) == []


def test_native_amx_build_on_a_vm_that_forbids_amx_will_sigill() -> None:
    trap = AmxStatus(cpuid_advertises=True, os_enabled=True, permitted=True, executes=False)
    facts = healthy(
        build=cpu_build(NATIVE_AMX),
        cpu_flags=(*X86_FLAGS, "avx512_bf16", "amx_tile", "amx_int8"),
        amx=trap,
    )
    [problem] = problems(facts)
    assert "SIGILL" in problem.message
    assert "AMX" in problem.message
    assert problem.fix == (
        'CMAKE_ARGS="-DGGML_NATIVE=OFF" /venv/bin/python -m pip install --upgrade '
        "--force-reinstall --no-cache-dir llama-cpp-python"
    )


def test_native_amx_build_where_amx_works_is_fine() -> None:
    facts = healthy(
        build=cpu_build(NATIVE_AMX),
        cpu_flags=(*X86_FLAGS, "avx512_bf16", "amx_tile", "amx_int8"),
        amx=AmxStatus(True, True, True, True),
    )
    assert problems(facts) == []


def test_build_from_another_machine_with_missing_isa_will_sigill() -> None:
    facts = healthy(build=cpu_build(NATIVE_AMX), cpu_flags=("sse3", "avx", "avx2", "fma"))
    [problem] = problems(facts)
    assert "AVX512" in problem.message and "SIGILL" in problem.message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in problem.fix


def test_portable_build_on_amx_trap_vm_is_fine_and_says_so() -> None:
    facts = healthy(amx=AmxStatus(True, False, False))
    results = doctor.run_checks(facts)
    assert all(result.ok for result in results)
    assert any("keep GGML_NATIVE=OFF" in result.message for result in results)


def test_nvidia_gpu_without_driver() -> None:
    facts = healthy(
        nvidia_hardware_present=True,
        nvidia_problem="NVML library not found (no NVIDIA driver installed)",
    )
    [problem] = problems(facts)
    assert "NVIDIA GPU is present but its driver is not usable" in problem.message
    assert "nvidia-smi" in problem.fix


def test_too_little_disk_for_the_default_model() -> None:
    [problem] = problems(healthy(disk_free_bytes=300_000_000))
    assert "qwen2.5-0.5b" in problem.message
    assert "0.3 GB free under /cache" in problem.message
    assert "HF_HUB_CACHE" in problem.fix


def test_llama_cpp_python_missing_gives_the_install_command_for_this_machine() -> None:
    [problem] = problems(healthy(llama_installed=False, build=None))
    assert "not installed" in problem.message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in problem.fix
    [with_gpu] = problems(healthy(llama_installed=False, build=None, nvidia_gpus=(RTX_4090,)))
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in with_gpu.fix


def test_llama_cpp_python_that_does_not_load() -> None:
    facts = healthy(build=None, llama_load_error="libcuda.so.1: cannot open shared object file")
    [problem] = problems(facts)
    assert "does not load (libcuda.so.1" in problem.message


def test_apple_silicon_without_metal_and_under_rosetta() -> None:
    facts = healthy(apple_silicon=True, cpu_flags_known=False, amx=None)
    [problem] = problems(facts)
    assert "without Metal" in problem.message
    assert 'CMAKE_ARGS="-DGGML_METAL=on"' in problem.fix
    metal = healthy(
        apple_silicon=True, cpu_flags_known=False, amx=None, build=cpu_build(offload=True)
    )
    assert problems(metal) == []
    [rosetta] = problems(healthy(rosetta=True, cpu_flags_known=False, amx=None))
    assert "Rosetta" in rosetta.message


def test_problem_lines_are_single_lines_with_the_fix() -> None:
    facts = healthy(
        nvidia_gpus=(RTX_4090,), disk_free_bytes=1, build=cpu_build(NATIVE_AMX), cpu_flags=()
    )
    lines = [result.line() for result in doctor.run_checks(facts)]
    assert len([line for line in lines if line.startswith("PROBLEM")]) == 3
    assert all("\n" not in line for line in lines)
    assert all(". Fix: " in line for line in lines if line.startswith("PROBLEM"))
