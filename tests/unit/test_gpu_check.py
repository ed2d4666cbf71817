"""The GPU check kit without a GPU: its rows, tolerances and verdict (pure), the sdist
trimming, the plan-to-log device mapping, and the models it writes, loaded for real
by llama.cpp on the CPU (``bench/gpu_check.py --allow-cpu --quick`` runs the rest)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.gpu_kit.build import build_into, dropped, offload_supported, trim_sdist, with_site
from bench.gpu_kit.checks_device import device_names, device_rows, nvml_row
from bench.gpu_kit.models import BYTE, spm_vocab, write_model
from bench.gpu_kit.rows import (
    EXIT_MISMATCH,
    EXIT_NOTHING_CHECKED,
    EXIT_OK,
    Row,
    expect,
    failed,
    format_table,
    info,
    skipped,
    summary,
    verdict,
    within_mib,
    within_pct,
    within_range,
)

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


# --------------------------------------------------------------------------- verdict


def test_all_ok_is_exit_0_and_skipped_rows_do_not_fail() -> None:
    rows = [expect("c", "layers", 33, 33), skipped("c", "AWQ", "no GPTQModel"), info("c", "x", "1")]
    assert verdict(rows) == EXIT_OK
    assert summary(rows) == "all checks passed: 2 ok, 0 MISMATCH, 1 skipped"


def test_any_mismatch_is_exit_1() -> None:
    rows = [expect("c", "layers", 33, 33), expect("c", "layers", 33, 29), skipped("c", "x", "y")]
    assert verdict(rows) == EXIT_MISMATCH
    assert summary(rows).startswith("MISMATCH: 1 ok, 1 MISMATCH")
    assert verdict([failed("c", "run", "ChildFailed: exit 7")]) == EXIT_MISMATCH


def test_nothing_checked_is_exit_2() -> None:
    assert verdict([skipped("GPU", "a GPU", "none")]) == EXIT_NOTHING_CHECKED
    assert verdict([]) == EXIT_NOTHING_CHECKED
    assert summary([skipped("GPU", "a GPU", "none")]).startswith("nothing was checked")


def test_tolerance_edges_count_as_within() -> None:
    assert within_mib("c", "w", 100 * MiB, 101 * MiB, 1.0).ok
    assert not within_mib("c", "w", 100 * MiB, 101 * MiB + 1024, 1.0).ok
    assert within_mib("c", "w", 100 * MiB, 99 * MiB, 1.0).ok  # below by the same
    assert within_pct("c", "t", 100.0, 110.0, 10.0).ok
    assert within_pct("c", "t", 100.0, 90.0, 10.0).ok
    assert not within_pct("c", "t", 100.0, 110.01, 10.0).ok
    assert within_pct("c", "t", 0.0, 0.0, 10.0).ok and not within_pct("c", "t", 0.0, 1.0, 10.0).ok
    assert within_range("c", "r", -1.0, 5.0, 5.0).ok and within_range("c", "r", -1.0, 5.0, -1.0).ok
    assert not within_range("c", "r", -1.0, 5.0, 5.001).ok


def test_rows_say_by_how_much() -> None:
    row = within_pct("c", "compute", 200.0, 230.0, 10.0, " MiB")
    assert (row.expected, row.measured, row.tolerance, row.note) == (
        "200 MiB",
        "230 MiB",
        "±10 %",
        "+15.0 %",
    )
    assert not row.ok


def test_table_groups_rows_and_marks_each() -> None:
    rows = [
        expect("plan vs log", "GPU0 weights", 1, 1),
        expect("plan vs log", "GPU0 KV", 1, 2),
        skipped("AWQ", "AWQ", "GPTQModel not importable"),
    ]
    lines = format_table(rows)
    assert lines[1] == "-- plan vs log" and lines[4] == "-- AWQ"
    assert lines[2].endswith(" ok") and lines[3].endswith(" MISMATCH")
    assert lines[5].endswith("skipped  (GPTQModel not importable)")
    assert json.loads(json.dumps([r.to_json() for r in rows]))[2]["ok"] is None


# --------------------------------------------------------------------------- plan vs log


PLANNED = [
    {
        "device": "GPU0",
        "weights": 100 * MiB,
        "kv": 10 * MiB,
        "compute": 50 * MiB,
        "reserve": 1024 * MiB,
    },
    {"device": "CPU", "weights": 5 * MiB, "kv": 0, "compute": 2 * MiB, "reserve": 0},
]


def test_devices_map_in_order_and_compare_with_the_accuracy_targets() -> None:
    logged = {
        "CUDA0": {"weights": 100 * MiB + 512 * 1024, "kv": 10 * MiB, "compute": 56 * MiB},
        "CPU": {"weights": 5 * MiB, "kv": 0, "compute": 2 * MiB},
    }
    assert device_names(PLANNED, logged) == {"GPU0": "CUDA0", "CPU": "CPU"}
    rows = {r.name: r for r in device_rows("c", PLANNED, logged)}
    assert rows["GPU0 weights"].ok  # 0.5 MiB off: within 1 MiB
    assert not rows["GPU0 compute"].ok  # 12 % off: past 10 %
    assert not rows["GPU0 total"].ok  # 166.5 vs 160 MiB: 4.1 %, past 3 %
    assert rows["CPU total"].ok


def test_a_device_llama_cpp_did_not_log_is_a_mismatch() -> None:
    rows = device_rows("c", PLANNED, {"CPU": {"weights": 5 * MiB, "kv": 0, "compute": 2 * MiB}})
    assert [r.name for r in rows if r.ok is False] == ["GPU0"]


def test_nvml_growth_must_stay_within_the_reserve() -> None:
    buffers = 160 * MiB
    assert nvml_row("c", PLANNED[0], buffers + 500 * MiB, "cuda").ok  # a CUDA context
    assert nvml_row("c", PLANNED[0], buffers + 1024 * MiB, "cuda").ok  # the reserve, exactly
    assert not nvml_row("c", PLANNED[0], buffers + 1100 * MiB, "cuda").ok
    assert not nvml_row("c", PLANNED[0], buffers // 2, "cuda").ok  # far less than planned
    assert nvml_row("c", PLANNED[0], None, "cuda").ok is None
    assert nvml_row("c", PLANNED[0], buffers, "metal").ok is None


# --------------------------------------------------------------------------- sdist, models


def _tar_gz(path: Path, names: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in names.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def test_trim_sdist_drops_only_what_the_build_does_not_need(tmp_path: Path) -> None:
    top = "llama_cpp_python-0.3.36"
    names = {
        f"{top}/CMakeLists.txt": b"project(x)",
        f"{top}/.git/modules/vendor/llama.cpp/objects/pack/pack-1.pack": b"p" * 5000,
        f"{top}/vendor/llama.cpp/.git": b"gitdir: ../../.git/modules/vendor/llama.cpp",
        f"{top}/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf": b"v" * 3000,
        f"{top}/vendor/llama.cpp/models/templates/chatml.jinja": b"{{ x }}",
        f"{top}/vendor/llama.cpp/docs/ops/CUDA.csv": b"c" * 2000,
        f"{top}/vendor/llama.cpp/docs/build.md": b"# build",
        f"{top}/vendor/llama.cpp/ggml/src/ggml.c": b"int x;",
    }
    source = _tar_gz(tmp_path / "src.tar.gz", names)
    sizes = trim_sdist(source, tmp_path / "out.tar.gz")
    with tarfile.open(tmp_path / "out.tar.gz") as tar:
        kept = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    assert set(kept) == {
        f"{top}/CMakeLists.txt",
        f"{top}/vendor/llama.cpp/models/templates/chatml.jinja",
        f"{top}/vendor/llama.cpp/docs/build.md",
        f"{top}/vendor/llama.cpp/ggml/src/ggml.c",
    }
    assert kept[f"{top}/vendor/llama.cpp/ggml/src/ggml.c"] == b"int x;"
    gitdir = names[f"{top}/vendor/llama.cpp/.git"]
    assert sizes["dropped_bytes"] == 5000 + len(gitdir) + 3000 + 2000
    assert not dropped(f"{top}/vendor/llama.cpp/docs/ops.md")


FAKE_PYPROJECT = b"""
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "fake-llama-cpp-python"
version = "0.0.1"
[tool.setuptools]
packages = ["llama_cpp"]
"""


@pytest.mark.slow
def test_build_into_a_folder_with_this_interpreters_tools(tmp_path: Path) -> None:
    """The build plumbing (pip --target, no index, no build isolation, the folder first on
    PYTHONPATH ahead of the installed llama-cpp-python) on a stand-in sdist: a CUDA
    llama-cpp-python cannot be built here (no GPU, no nvcc), so its ``llama_cpp`` is a
    stub, which localchat's build detection finds has no libraries (offload: None)."""
    sdist = _tar_gz(
        tmp_path / "fake-0.0.1.tar.gz",
        {
            "fake-0.0.1/pyproject.toml": FAKE_PYPROJECT,
            "fake-0.0.1/llama_cpp/__init__.py": b"def llama_supports_gpu_offload():\n    return True\n",
        },
    )
    site = tmp_path / "site"
    report = build_into(site, sdist, None, "cuda", "90")
    assert (site / "llama_cpp" / "__init__.py").exists()
    found = subprocess.run(
        [sys.executable, "-c", "import llama_cpp; print(llama_cpp.__file__)"],
        env=with_site(dict(os.environ), site),
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == str(site / "llama_cpp" / "__init__.py")  # shadows the venv's
    assert report["offload"] is None and report["seconds"] > 0
    assert report["cmake_args"].startswith("-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90")
    broken = _tar_gz(tmp_path / "broken-0.0.1.tar.gz", {"broken-0.0.1/pyproject.toml": b"[x"})
    with pytest.raises(RuntimeError, match="build failed"):
        build_into(tmp_path / "site2", broken, None, "cuda", "90")


@pytest.mark.llama
def test_this_machines_llama_cpp_does_not_offload() -> None:
    assert offload_supported(sys.executable) is False


def test_vocabulary_is_sentencepiece_with_byte_fallback() -> None:
    tokens, scores, types = spm_vocab(300)
    assert len(tokens) == len(scores) == len(types) == 300 and len(set(tokens)) == 300
    assert tokens[3 + 0x41] == "<0x41>" and types[3 + 0x41] == BYTE
    assert tokens[259] == "\u2581"


@pytest.mark.llama
def test_written_model_runs_in_llama_cpp(tmp_path: Path) -> None:
    """A small model in the kit's format: llama.cpp loads it, tokenizes text through the
    byte fallback and back, and generates (zero weights: nothing meaningful)."""
    shape = {"n_layers": 2, "n_embd": 256, "n_head": 4, "n_head_kv": 2, "n_ff": 512,
             "n_vocab": 1000, "n_ctx_train": 2048}  # fmt: skip
    path = write_model(tmp_path / "m.gguf", "kit test", "Q8_0", shape)
    script = (
        "import json, sys, llama_cpp\n"
        "llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, verbose=False)\n"
        "tokens = llm.tokenize('Grüße, world'.encode())\n"
        "out = llm.create_completion('hi', max_tokens=3, temperature=0)\n"
        "print(json.dumps({'text': llm.detokenize(tokens).decode(), 'n': len(tokens),\n"
        "  'usage': out['usage']['completion_tokens']}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-1000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"] == "Grüße, world"
    assert result["n"] >= len("Grüße, world".encode()) and result["usage"] == 3


def test_the_script_without_a_gpu_checks_nothing(tmp_path: Path) -> None:
    """On a machine with no GPU (this one) and without --allow-cpu: one skipped row,
    exit 2, and the JSON says so."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(out.read_text())
    if doc["kind"] != "cpu":
        pytest.skip("this machine has a GPU")
    assert done.returncode == EXIT_NOTHING_CHECKED, done.stderr[-1000:]
    assert doc["verdict"] == EXIT_NOTHING_CHECKED and doc["rows"][0]["ok"] is None
    assert "nothing was checked" in done.stdout


def test_row_is_plain_data() -> None:
    row = Row("c", "n", "1", "2", "equal", False, "why")
    assert Row(**row.to_json()) == row
