"""Thread choice from the hardware: physical cores, P-cores of hybrid CPUs, a core left to
the GPU driver; and the sysfs reading that finds P-cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.errors import ConfigError
from localchat.hardware.cpu import linux_performance_cores, parse_cpu_list
from localchat.hardware.types import CpuInfo
from localchat.planner.threads import choose_threads
from localchat.settings import settings_from_dict


def cpu(physical: int, logical: int | None = None, performance: int = 0) -> CpuInfo:
    return CpuInfo("test CPU", physical, logical or physical, performance_cores=performance)


def test_all_physical_cores_for_both_on_a_plain_cpu() -> None:
    choice = choose_threads(cpu(2))
    assert (choice.n_threads, choice.n_threads_batch) == (2, 2)
    assert "2 physical cores" in choice.source


def test_smt_siblings_are_not_counted() -> None:
    choice = choose_threads(cpu(8, logical=16))
    assert (choice.n_threads, choice.n_threads_batch) == (8, 8)


def test_hybrid_cpu_decodes_on_performance_cores_and_batches_on_all() -> None:
    choice = choose_threads(cpu(14, logical=20, performance=6))
    assert (choice.n_threads, choice.n_threads_batch) == (6, 14)
    assert "6 performance cores of 14" in choice.source


def test_one_core_is_left_to_the_gpu_driver_when_layers_are_offloaded() -> None:
    choice = choose_threads(cpu(8), n_gpu_layers=20)
    assert (choice.n_threads, choice.n_threads_batch) == (7, 7)
    assert "GPU driver" in choice.source
    small = choose_threads(cpu(2), n_gpu_layers=20)  # too few cores to spare one
    assert (small.n_threads, small.n_threads_batch) == (2, 2)


def test_the_users_count_wins_and_bad_counts_are_refused() -> None:
    choice = choose_threads(cpu(16, performance=8), n_gpu_layers=5, requested=3)
    assert (choice.n_threads, choice.n_threads_batch) == (3, 3)
    with pytest.raises(ConfigError):
        choose_threads(cpu(2), requested=0)


def test_settings_toml_threads_is_validated() -> None:
    assert settings_from_dict({"threads": 4}).threads == 4
    with pytest.raises(ConfigError):
        settings_from_dict({"threads": 0})
    with pytest.raises(ConfigError):
        settings_from_dict({"threads": "many"})


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == []


def _sysfs(root: Path, cores: dict[int, tuple[int, str]]) -> Path:
    """A fake /sys/devices/system/cpu: logical cpu -> (core_id, cpu_capacity or "")."""
    sys_cpu = root / "cpu"
    sys_cpu.mkdir()
    (sys_cpu / "online").write_text(f"0-{max(cores)}\n")
    for number, (core_id, capacity) in cores.items():
        topology = sys_cpu / f"cpu{number}" / "topology"
        topology.mkdir(parents=True)
        (topology / "core_id").write_text(f"{core_id}\n")
        (topology / "physical_package_id").write_text("0\n")
        if capacity:
            (sys_cpu / f"cpu{number}" / "cpu_capacity").write_text(f"{capacity}\n")
    return sys_cpu


def test_intel_hybrid_p_cores_counted_once_per_physical_core(tmp_path: Path) -> None:
    # 6 P-cores with SMT (cpus 0-11), 8 E-cores (cpus 12-19)
    cores = {n: (n // 2, "") for n in range(12)} | {n: (100 + n, "") for n in range(12, 20)}
    sys_cpu = _sysfs(tmp_path, cores)
    core_pmu = tmp_path / "cpu_core_cpus"
    core_pmu.write_text("0-11\n")
    assert linux_performance_cores(sys_cpu, core_pmu) == 6


def test_arm_big_little_by_capacity(tmp_path: Path) -> None:
    cores = {n: (n, "446") for n in range(4)} | {n: (n, "1024") for n in range(4, 8)}
    assert linux_performance_cores(_sysfs(tmp_path, cores), tmp_path / "absent") == 4


def test_cores_all_alike_are_not_hybrid(tmp_path: Path) -> None:
    cores = {n: (n, "1024") for n in range(4)}
    assert linux_performance_cores(_sysfs(tmp_path, cores), tmp_path / "absent") == 0


def test_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    from localchat.hardware.cpu import cgroup_cpu_limit

    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("250000 100000\n")
    assert cgroup_cpu_limit(cpu_max) == 3
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_limit(cpu_max) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_cores_busy_with_other_programs_are_left_to_them() -> None:
    busy = CpuInfo("test CPU", 2, 2, busy_cores=1)
    choice = choose_threads(busy)
    assert (choice.n_threads, choice.n_threads_batch) == (1, 1)
    assert "1 busy with other programs" in choice.source
    roomy = choose_threads(CpuInfo("test CPU", 8, 16, busy_cores=4))  # SMT siblings absorb it
    assert (roomy.n_threads, roomy.n_threads_batch) == (8, 8)
    assert choose_threads(busy, requested=2).n_threads == 2
