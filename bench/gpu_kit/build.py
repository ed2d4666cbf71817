"""A llama-cpp-python with the GPU backend, built into a throw-away folder when the one
installed has none; and the trimmed sdist that makes the build portable.

The folder is a ``pip install --target`` put first on PYTHONPATH, not a venv: the lent
GPU machine's python3 is itself a venv (torch, transformers, scikit-build-core, CMake
live there), and a venv made from it would not see them.

The full sdist of llama-cpp-python 0.3.36 is 76.6 MB (216 MB unpacked), over what
travels to a lent GPU machine (64 MiB a call).  Most of it is not needed to build:
the git metadata (a 38 MB pack of the llama.cpp submodule), the tokenizer test
vocabularies ``vendor/llama.cpp/models/ggml-vocab-*.gguf`` and the op-support tables
``vendor/llama.cpp/docs/ops/*.csv``.  ``trim_sdist`` drops those (about 15 MB left).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

DROP_PATTERNS = (
    ".git",  # the superproject's git dir: the submodule's object pack lives in it
    ".git/*",
    "vendor/llama.cpp/.git",  # the submodule's gitdir file, pointing into the above
    "vendor/llama.cpp/models/ggml-vocab-*.gguf",
    "vendor/llama.cpp/docs/ops/*.csv",
)
# localchat's own reading of the build: a local GPU device, not just "offload" (which a
# CPU build with RPC also reports).  null: no llama-cpp-python, or one that does not load.
OFFLOAD_PROBE = """
import json
from localchat.errors import LocalchatError
from localchat.hardware.llama_build import detect_llama_build
try:
    build = detect_llama_build()
except LocalchatError:
    build = None
print(json.dumps(None if build is None else build.supports_gpu_offload))
"""
ROOT = Path(__file__).resolve().parents[2]


def dropped(member_name: str) -> bool:
    """Whether a path in the sdist (``<top>/<path>``) is one the build does not need."""
    _, _, inner = member_name.partition("/")
    return any(fnmatch.fnmatchcase(inner, pattern) for pattern in DROP_PATTERNS)


def trim_sdist(source: Path, target: Path) -> dict[str, int]:
    """Copy the sdist ``source`` (.tar.gz) to ``target`` without what the build does not need."""
    kept = dropped_bytes = 0
    with tarfile.open(source, "r:gz") as src, tarfile.open(target, "w:gz") as out:
        for member in src:
            if dropped(member.name):
                dropped_bytes += member.size
                continue
            data = src.extractfile(member) if member.isfile() else None
            out.addfile(member, data)
            kept += member.size
    return {
        "kept_bytes": kept,
        "dropped_bytes": dropped_bytes,
        "target_bytes": target.stat().st_size,
    }


def offload_supported(python: str, site: Path | None = None) -> bool | None:
    """Whether ``python``'s llama-cpp-python (``site`` first on the path) offloads to a
    GPU; None if it has none."""
    env = with_site(dict(os.environ), ROOT)
    env = with_site(env, site) if site else env
    done = subprocess.run([python, "-c", OFFLOAD_PROBE], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return None
    answer: bool | None = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def with_site(env: dict[str, str], site: Path) -> dict[str, str]:
    """``env`` with ``site`` first on PYTHONPATH."""
    rest = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(site), rest) if p)}


def cmake_args(kind: str, cuda_arch: str) -> str:
    """GGML_NATIVE=OFF as in the README's install: cloud VMs may advertise AMX and not
    allow it, and a native build then dies at the first token."""
    portable = "-DGGML_NATIVE=OFF -DGGML_RPC=on"
    if kind == "cuda":
        return f"-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES={cuda_arch} {portable}"
    return f"-DGGML_METAL=on {portable}" if kind == "metal" else portable


def build_into(
    site: Path, sdist: Path, wheels: Path | None, kind: str, cuda_arch: str
) -> dict[str, Any]:
    """``wheels`` and llama-cpp-python built from ``sdist`` for ``kind``, installed into
    the folder ``site`` with this interpreter's build tools; returns the build report."""
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir"]
    pip += ["--upgrade", "-q", "--target", str(site)]
    carried = sorted(wheels.glob("*.whl")) if wheels else []
    if carried:
        subprocess.run([*pip, *map(str, carried)], check=True)
    args = cmake_args(kind, cuda_arch)
    env = dict(os.environ, CMAKE_ARGS=args, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 4))
    started = time.perf_counter()
    done = subprocess.run(
        [*pip, "--no-build-isolation", str(sdist)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError("the llama-cpp-python build failed:\n" + "\n".join(tail))
    return {
        "site": str(site),
        "seconds": round(seconds, 1),
        "cmake_args": args,
        "offload": offload_supported(sys.executable, site),
        "wheels": [w.name for w in carried],
    }
