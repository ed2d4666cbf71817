"""``localchat.llamacpp``: one library object, the only importer of ``llama_cpp``, on the
ggml libllama really uses (issue 16, part 1).

The ggml question settled here: llama-cpp-python's ``llama_cpp._ggml.libggml`` loads
``lib/libggml.so`` by path, while libllama links ``libggml.so.0``; the wheel stores them
as two files, so the process maps two copies of ggml, each with its own device
registry.  Registering a device through one is invisible to the other.  The CPU backend
(``libggml-cpu.so.0``) is shared, which is why handing that copy's CPU buffer type to
libllama happened to work.  Registry mutations run in child processes: ggml cannot
unregister a device.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.llama]
pytest.importorskip("llama_cpp")

TWO_GGML_COPIES = r"""
import ctypes, json, sys
from llama_cpp._ggml import libggml as other
from localchat.llamacpp import library

for name, argtypes, restype in (
    ("ggml_backend_dev_count", [], ctypes.c_size_t),
    ("ggml_backend_dev_by_type", [ctypes.c_int], ctypes.c_void_p),
    ("ggml_backend_dev_buffer_type", [ctypes.c_void_p], ctypes.c_void_p),
):
    getattr(other, name).argtypes, getattr(other, name).restype = argtypes, restype
ggml = library().native.ggml  # the registry libllama loads models with
before = (ggml.device_count(), other.ggml_backend_dev_count())
library().native.rpc.add_server(sys.argv[1])  # a worker's device, through libllama's ggml
after = (ggml.device_count(), other.ggml_backend_dev_count())
print(json.dumps({
    "before": before, "after": after,
    "ours": ggml.function_address("ggml_backend_dev_count"),
    "theirs": ctypes.cast(other.ggml_backend_dev_count, ctypes.c_void_p).value,
    "our_cpu_buffer": library().native.cpu_buffer_type(),
    "their_cpu_buffer": other.ggml_backend_dev_buffer_type(other.ggml_backend_dev_by_type(0)),
    "maps": sorted({line.split()[-1].rsplit("/", 1)[-1] for line in open("/proc/self/maps")
                    if "libggml.so" in line}),
}))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_llama_cpp_ggml_is_a_second_copy_with_its_own_registry(localchat_home: Path) -> None:
    from localchat.llamacpp import library
    from tests.integration.test_rpc_workers import start_worker

    if not library().native.rpc.supported:
        pytest.skip("llama.cpp built without RPC")
    worker = start_worker(localchat_home)  # a device to register (ggml ignores duplicates)
    try:
        run = _python(TWO_GGML_COPIES, worker.endpoint)
    finally:
        worker.stop()
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["maps"] == ["libggml.so", "libggml.so.0"]  # two copies of ggml are mapped
    assert found["ours"] != found["theirs"]  # the same symbol resolves to two functions
    ours_before, theirs_before = found["before"]
    assert ours_before == theirs_before  # both registries start with the built-in backends
    assert found["after"] == [ours_before + 1, theirs_before]  # only libllama's ggml saw it
    assert found["our_cpu_buffer"] == found["their_cpu_buffer"]  # libggml-cpu is shared


def test_importing_the_package_loads_no_native_library() -> None:
    code = (
        "import sys, localchat.llamacpp, localchat.engine.logs; print('llama_cpp' in sys.modules)"
    )
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_help_does_not_import_llama_cpp() -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "localchat", "--help"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines()}
    assert "llama_cpp" not in imported and "localchat.llamacpp._bindings" not in imported


def test_only_the_llamacpp_package_imports_llama_cpp() -> None:
    importer = re.compile(r"^\s*(import llama_cpp\b|from llama_cpp\b)", re.MULTILINE)
    found = sorted(
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "localchat").rglob("*.py")
        if importer.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["localchat/llamacpp/_bindings.py"]


def test_the_library_hides_ggml_backtraces_and_lists_devices_once() -> None:
    code = (
        "import json, os\n"
        "from localchat.llamacpp import library\n"
        "from localchat.hardware import detect_llama_build\n"
        "native = library().native\n"
        "build = detect_llama_build()\n"
        "print(json.dumps({'env': os.environ.get('GGML_NO_BACKTRACE'),\n"
        "  'library': [d.name for d in native.devices()],\n"
        "  'build': [d.name for d in build.device_memory],\n"
        "  'same_object': library().native is native}))\n"
    )
    run = _python(code)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["env"] == "1"  # set before llama.cpp loaded: no gdb on stdout at an abort
    assert found["library"] == found["build"] and "CPU" in found["library"]
    assert found["same_object"]


def test_a_build_without_rpc_is_reported_by_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from localchat.errors import BackendUnavailable
    from localchat.llamacpp import library

    rpc = library().native.rpc
    monkeypatch.setattr(rpc, "supported", False)
    with pytest.raises(BackendUnavailable) as caught:
        rpc.add_server("127.0.0.1:1")
    assert "-DGGML_RPC=on" in caught.value.one_line()
    assert "127.0.0.1:1" not in rpc.registered


def test_the_log_router_gets_llama_cpp_lines(gemma_path: Path, localchat_home: Path) -> None:
    from localchat.llamacpp import library
    from localchat.llamacpp.model import LlamaModel, ModelParams

    lib = library()
    with lib.log.capture() as lines:
        model = LlamaModel(lib.native, gemma_path, ModelParams())
        model.close()
    text = "".join(lines)
    assert "load_tensors:" in text and "model buffer size" in text
    assert "load_tensors:" in (localchat_home / "logs" / "llama.log").read_text()
