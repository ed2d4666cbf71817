"""Hardware detection: parsers and decisions, fed with text and fakes.

This machine has no GPU, so NVIDIA/AMD/Apple paths run on recorded tool
output, a fake ``pynvml`` module and a fake ``nvidia-smi`` on PATH.
"""

from __future__ import annotations

import json
import stat
import sys
import types
from pathlib import Path

import pytest

from localchat.hardware import amd, apple, bandwidth, cpu, detect, llama_build, nvidia
from localchat.hardware.serialize import hardware_to_dict
from localchat.hardware.types import AmxStatus, CpuInfo, GpuInfo, Hardware

GIB = 1024**3
MIB = 1024**2

CPUINFO_AMX_VM = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse sse2 pni ssse3 fma avx f16c avx2 bmi2 avx512f avx512_vnni amx_tile amx_int8
processor	: 1
model name	: something else
flags		: fpu
"""


def test_parse_proc_cpuinfo_takes_first_block_and_interesting_flags() -> None:
    model, flags = cpu.parse_proc_cpuinfo(CPUINFO_AMX_VM)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == (
        "sse3",
        "ssse3",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi2",
        "avx512f",
        "avx512_vnni",
        "amx_tile",
        "amx_int8",
    )


def test_parse_proc_cpuinfo_arm() -> None:
    text = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\nCPU part\t: 0xd0c\n"
    assert cpu.parse_proc_cpuinfo(text) == ("", ("asimd", "asimddp", "i8mm", "sve"))


@pytest.mark.parametrize(
    ("status", "usable", "trap"),
    [
        (AmxStatus(True, True, True, True), True, False),
        (AmxStatus(True, True, True, None), True, False),
        (AmxStatus(True, True, True, False), False, True),  # tilezero SIGILLs
        (AmxStatus(True, False, False, None), False, True),  # VM: CPUID says yes, XCR0 no
        (AmxStatus(True, True, False, None), False, True),  # arch_prctl refused
        (AmxStatus(False, False, False, None), False, False),  # no AMX at all
    ],
)
def test_amx_status_verdicts(status: AmxStatus, usable: bool, trap: bool) -> None:
    assert status.usable is usable
    assert status.trap is trap


def test_system_info_parsing_with_several_backends() -> None:
    text = (
        "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
        "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 0 | "
    )
    sections = llama_build.parse_system_info(text)
    assert sections["CUDA"]["ARCHS"] == "890"
    features = llama_build.compiled_cpu_features(text)
    assert features == ("SSE3", "AVX2", "AVX512", "AMX_INT8", "LLAMAFILE")
    assert llama_build.looks_native(features)


def test_portable_build_is_not_native() -> None:
    features = ("SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "LLAMAFILE", "REPACK")
    assert not llama_build.looks_native(features)


def test_unusable_isa_features() -> None:
    build = ("AVX2", "AVX512", "AMX_INT8", "OPENMP")
    assert llama_build.unusable_isa_features(build, ("avx2", "avx512f")) == ["AMX_INT8"]
    assert llama_build.unusable_isa_features(build, ("avx2",)) == ["AVX512", "AMX_INT8"]


def test_nvidia_smi_csv_parsing() -> None:
    text = (
        "0, NVIDIA GeForce RTX 4090, 24564, 23012, 1552\n"
        "1, NVIDIA GeForce RTX 3090, 24576, [N/A], 0\n"
        "2, NVIDIA H100 80GB HBM3, 81559, 81000, 559\n"
    )
    gpus = nvidia.parse_nvidia_smi_csv(text)
    assert [gpu.index for gpu in gpus] == [0, 2]
    assert gpus[0].total_bytes == 24564 * MIB
    assert gpus[0].free_bytes == 23012 * MIB
    assert gpus[0].bandwidth_bytes_per_s == 1008e9
    assert gpus[1].bandwidth_bytes_per_s == 3350e9
    assert {gpu.source for gpu in gpus} == {"nvidia-smi"}


class _FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def _fake_pynvml(init_error: int | None = None) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.NVMLError = _FakeNvmlError
    module.NVML_ERROR_LIBRARY_NOT_FOUND = 12
    module.NVML_ERROR_DRIVER_NOT_LOADED = 9
    module.NVML_ERROR_NO_PERMISSION = 4

    def init() -> None:
        if init_error is not None:
            raise _FakeNvmlError(init_error)

    memory = types.SimpleNamespace(total=24 * GIB, free=22 * GIB, used=2 * GIB)
    module.nvmlInit = init
    module.nvmlShutdown = lambda: None
    module.nvmlSystemGetDriverVersion = lambda: "560.35.03"
    module.nvmlDeviceGetCount = lambda: 2
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda handle: [b"NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"][
        handle
    ]
    module.nvmlDeviceGetMemoryInfo = lambda handle: memory
    module.nvmlDeviceGetCudaComputeCapability = lambda handle: (8, 9)
    return module


def test_nvml_path_with_a_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    scan = nvidia.detect_nvidia()
    assert scan.driver_found
    assert [gpu.name for gpu in scan.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"]
    first = scan.gpus[0]
    assert (first.total_bytes, first.free_bytes) == (24 * GIB, 22 * GIB)
    assert (first.source, first.compute_capability, first.driver_version) == (
        "nvml",
        "8.9",
        "560.35.03",
    )
    assert scan.gpus[1].bandwidth_bytes_per_s == 768e9


def test_nvml_library_not_found_means_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(init_error=12))
    monkeypatch.setenv("PATH", "/nonexistent")
    scan = nvidia.detect_nvidia()
    assert scan.gpus == ()
    assert "no NVIDIA driver" in scan.problem


def test_nvidia_smi_fallback_runs_the_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NVML module: a fake ``nvidia-smi`` on PATH answers the real query."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *memory.total*) echo "0, NVIDIA GeForce RTX 3060, 12288, 11000, 1288";; '
        "*) exit 9;; esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    monkeypatch.setenv("PATH", str(tmp_path))
    scan = nvidia.detect_nvidia()
    assert [(gpu.name, gpu.free_bytes) for gpu in scan.gpus] == [
        ("NVIDIA GeForce RTX 3060", 11000 * MIB)
    ]
    assert scan.gpus[0].bandwidth_bytes_per_s == 360e9
    assert "nvidia-smi" in scan.notes[0]


def test_nvidia_pci_devices_from_sysfs(tmp_path: Path) -> None:
    for name, vendor, pci_class in [
        ("0000:00:02.0", "0x8086", "0x030000"),  # Intel iGPU
        ("0000:01:00.0", "0x10de", "0x030000"),  # NVIDIA VGA
        ("0000:01:00.1", "0x10de", "0x040300"),  # NVIDIA HDMI audio
        ("0000:02:00.0", "0x10de", "0x030200"),  # NVIDIA 3D controller (data centre)
    ]:
        device = tmp_path / name
        device.mkdir()
        (device / "vendor").write_text(vendor + "\n")
        (device / "class").write_text(pci_class + "\n")
    assert nvidia.nvidia_pci_devices(tmp_path) == ("0000:01:00.0", "0000:02:00.0")
    assert nvidia.nvidia_pci_devices(tmp_path / "missing") == ()


def test_rocm_smi_json_parsing() -> None:
    text = json.dumps(
        {
            "card1": {"VRAM Total Memory (B)": "17163091968", "VRAM Total Used Memory (B)": "0"},
            "card0": {
                "VRAM Total Memory (B)": "25753026560",
                "VRAM Total Used Memory (B)": "1022545920",
                "Card Series": "Radeon RX 7900 XTX",
            },
            "system": {"Driver version": "6.8"},
        }
    )
    gpus = amd.parse_rocm_smi_json(text)
    assert [gpu.index for gpu in gpus] == [0, 1]
    assert gpus[0].name == "Radeon RX 7900 XTX"
    assert gpus[0].free_bytes == 25753026560 - 1022545920
    assert gpus[0].bandwidth_bytes_per_s == 960e9
    assert gpus[1].name == "AMD GPU card1"
    assert amd.parse_rocm_smi_json("not json") == ()


@pytest.mark.parametrize(
    ("name", "total_bytes", "gb_per_s"),
    [
        ("NVIDIA GeForce RTX 3060", 12 * GIB, 360),
        ("NVIDIA GeForce RTX 3090", 24 * GIB, 936),
        ("NVIDIA GeForce RTX 4060", 8 * GIB, 272),
        ("NVIDIA GeForce RTX 4070 Ti SUPER", 16 * GIB, 672),
        ("NVIDIA GeForce RTX 4070", 12 * GIB, 504),
        ("NVIDIA GeForce RTX 4080", 16 * GIB, 717),
        ("NVIDIA GeForce RTX 4090", 24 * GIB, 1008),
        ("NVIDIA A100-SXM4-80GB", 80 * GIB, 2039),
        ("NVIDIA A100-PCIE-40GB", 40 * GIB, 1555),
        ("NVIDIA H100 80GB HBM3", 80 * GIB, 3350),
        ("NVIDIA H100 PCIe", 80 * GIB, 2000),
        ("NVIDIA H200", 141 * GIB, 4800),
        ("NVIDIA GH200 480GB", 96 * GIB, 4000),
        ("Apple M1", 0, 68.25),
        ("Apple M2 Max", 0, 400),
        ("Apple M3 Pro", 0, 150),
        ("Apple M4 Max", 0, 546),
    ],
)
def test_known_gpu_bandwidth(name: str, total_bytes: int, gb_per_s: float) -> None:
    assert bandwidth.gpu_bandwidth_bytes_per_s(name, total_bytes) == gb_per_s * 1e9


def test_unknown_gpu_has_no_bandwidth() -> None:
    assert bandwidth.gpu_bandwidth_bytes_per_s("Matrox G200eR2") is None


def test_cpu_bandwidth_estimate_is_per_core_and_capped() -> None:
    assert bandwidth.estimate_cpu_bandwidth(2)[0] == 20e9
    assert bandwidth.estimate_cpu_bandwidth(64)[0] == bandwidth.CPU_BYTES_PER_S_CAP
    assert "estimate" in bandwidth.estimate_cpu_bandwidth(2)[1]


def test_measured_cpu_bandwidth_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_measure() -> float:
        calls.append(1)
        return 12.5e9

    monkeypatch.setattr(bandwidth, "measure_copy_bandwidth", fake_measure)
    first = bandwidth.measure_cpu_bandwidth("Test CPU", 8)
    second = bandwidth.measure_cpu_bandwidth("Test CPU", 8)
    assert first[0] == second[0] == 12.5e9
    assert "cached" in second[1]
    assert len(calls) == 1


def test_real_copy_bandwidth_is_plausible() -> None:
    measured = bandwidth.measure_copy_bandwidth(array_bytes=16 * MIB, runs=2)
    assert 0.1e9 < measured < 2000e9


def test_apple_budget_falls_back_to_a_documented_fraction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apple, "metal_working_set_bytes", lambda: None)
    gpu, notes = apple.detect_apple("Apple M2 Max", 32 * GIB, 20 * GIB)
    assert gpu.total_bytes == int(32 * GIB * 0.70)
    assert gpu.free_bytes == 20 * GIB  # never more than RAM available now
    assert gpu.vendor == "apple"
    assert gpu.source == "estimate"
    assert "70% of RAM" in notes[0]


def test_apple_budget_from_metal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apple, "metal_working_set_bytes", lambda: ("Apple M1 Max", 26 * GIB))
    gpu, notes = apple.detect_apple("Apple M1 Max", 32 * GIB, 30 * GIB)
    assert (gpu.total_bytes, gpu.free_bytes, gpu.source, notes) == (
        26 * GIB,
        26 * GIB,
        "metal",
        (),
    )
    assert gpu.bandwidth_bytes_per_s == 400e9


def test_detect_hardware_notes_a_gpu_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "is_apple_silicon", lambda: False)
    monkeypatch.setattr(
        detect, "detect_nvidia", lambda: nvidia.NvidiaScan(problem="NVIDIA driver not loaded")
    )
    monkeypatch.setattr(detect, "nvidia_hardware_present", lambda: True)
    monkeypatch.setattr(detect, "detect_amd", lambda: ())
    hardware = detect.detect_hardware()
    assert hardware.gpus == ()
    assert any("driver not loaded" in note for note in hardware.notes)


def test_hardware_to_dict_has_stable_fields() -> None:
    hardware = Hardware(
        cpu=CpuInfo(
            "Test CPU", 4, 8, ("avx2",), 40e9, "x86_64", "estimate", AmxStatus(True, False, False)
        ),
        ram_total_bytes=32 * GIB,
        ram_available_bytes=30 * GIB,
        gpus=(GpuInfo(0, "NVIDIA GeForce RTX 4090", "nvidia", 24 * GIB, 23 * GIB, 1008e9, "nvml"),),
    )
    data = hardware_to_dict(hardware)
    json.dumps(data)
    assert data["cpu"]["amx"]["trap"] is True
    assert data["gpus"][0]["free_bytes"] == 23 * GIB
    assert data["total_vram_free_bytes"] == 23 * GIB
    assert set(data) >= {"cpu", "ram_total_bytes", "ram_available_bytes", "gpus", "build", "notes"}
