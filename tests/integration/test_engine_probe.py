"""llama.cpp aborts and Ctrl-C during a load (issue 9, items 4 and 13), on real llama.cpp.

* A file llama.cpp aborts on (SIGABRT in a ``GGML_ASSERT``) is loaded first in a child
  process: the abort becomes one ``CorruptModelFile`` line, this process lives on.
  (``gguf.checks`` refuses every such file we know of, so these tests hand the file to
  the engine directly, as a file validation does not know yet would reach it.)
* Ctrl-C (a real SIGINT to a real ``localchat ask``) stops a load that is under way,
  instead of being swallowed by the ctypes log callback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localchat.engine.probe import check_first_load, probe_key, probe_record_file
from localchat.engine.settings import LlamaSettings
from localchat.errors import CorruptModelFile, ExitCode
from localchat.jsonfile import read_json
from localchat.paths import llama_log_file
from tests.fixtures.gguf_files import tiny_spec, write_gguf
from tests.integration.cli import (
    assert_one_clean_error_line,
    default_sigint,
    localchat_env,
    run_localchat,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow]


def aborting_gguf(tmp_path: Path) -> Path:
    """Loads as far as llama.cpp's hparams, which assert n_expert <= LLAMA_MAX_EXPERTS."""
    spec = tiny_spec()
    spec.metadata["llama.expert_count"] = 2000
    spec.metadata["llama.expert_used_count"] = 2
    return write_gguf(tmp_path / "aborts.gguf", spec)[0]


def test_an_abort_in_the_first_load_is_one_line(tmp_path: Path, capfd) -> None:
    path = aborting_gguf(tmp_path)
    with pytest.raises(CorruptModelFile) as caught:
        check_first_load(path)
    line = caught.value.one_line()
    assert "llama.cpp aborted loading aborts.gguf (SIGABRT)" in line
    assert "GGML_ASSERT(hparams.n_expert <= LLAMA_MAX_EXPERTS)" in line and "\n" not in line
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # llama.cpp's and gdb's noise stayed in the child
    assert probe_key(path) not in read_json(probe_record_file()).get("loaded", [])


def test_the_backend_never_loads_an_aborting_file_in_process(tmp_path: Path) -> None:
    from localchat.engine import load_backend

    with pytest.raises(CorruptModelFile, match="SIGABRT"):
        load_backend(LlamaSettings(model_path=aborting_gguf(tmp_path), n_ctx=256))


def test_a_good_first_load_is_remembered(gemma_path: Path) -> None:
    check_first_load(gemma_path)
    key = probe_key(gemma_path)
    assert key is not None and key in read_json(probe_record_file())["loaded"]
    stamp = probe_record_file().stat().st_mtime_ns
    check_first_load(gemma_path)  # known: no child, no write
    assert probe_record_file().stat().st_mtime_ns == stamp


def slow_loading_gguf(tmp_path: Path) -> Path:
    """~700 MB of (sparse) Q4_0 weights that llama.cpp repacks for the CPU: a load of
    a few seconds, long enough to press Ctrl-C in the middle of it."""
    spec = tiny_spec(
        quant="Q4_0", n_layers=24, n_embd=2048, n_ff=5632, n_head=16, n_head_kv=4, n_vocab=32000
    )
    spec.metadata["tokenizer.ggml.merges"] = ["a b"]
    return write_gguf(tmp_path / "slow.gguf", spec)[0]


def test_ctrl_c_interrupts_a_load(tmp_path: Path, localchat_home: Path) -> None:
    model = slow_loading_gguf(tmp_path)
    check_first_load(model)  # the child's quick first load: the next one is in-process
    log = llama_log_file()
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", str(model), "--max-tokens", "1", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=localchat_env(localchat_home),
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "load_tensors:" not in (log.read_text() if log.exists() else ""):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        sent_at = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        print(f"exited {time.monotonic() - sent_at:.2f} s after SIGINT")
    finally:
        if process.poll() is None:
            process.kill()
    text = stderr.decode()
    assert process.returncode == ExitCode.INTERRUPTED, text
    assert "Exception ignored" not in text and "Traceback" not in text
    assert "llama_context" not in log.read_text()  # stopped before a context was made


def rwkv_tokenizer_gguf(tmp_path: Path) -> Path:
    """Issue 21: a Llama-architecture file whose ``tokenizer.ggml.model`` is ``rwkv``.
    It loads; its tokenizer then answers with ids outside the vocabulary."""
    spec = tiny_spec()
    spec.metadata["tokenizer.ggml.model"] = "rwkv"
    return write_gguf(tmp_path / "rwkv-tokenizer.gguf", spec)[0]


def test_a_file_whose_tokenizer_breaks_is_refused_at_its_first_load(
    tmp_path: Path, localchat_home: Path
) -> None:
    path = rwkv_tokenizer_gguf(tmp_path)
    with pytest.raises(CorruptModelFile) as caught:
        check_first_load(path)  # the child loads it, tokenizes a text, decodes a token
    assert "rwkv-tokenizer.gguf loads but cannot generate" in caught.value.one_line()
    assert "token ids outside its vocabulary" in caught.value.one_line()
    assert probe_key(path) not in read_json(probe_record_file()).get("loaded", [])
    result = run_localchat(localchat_home, "ask", "-m", str(path), "--no-pull", "Hello")
    assert_one_clean_error_line(result, ExitCode.CORRUPT_MODEL_FILE)  # stdout stays empty


LOAD_DIRECTLY = r"""
import sys
from pathlib import Path
from localchat.engine import load_backend
from localchat.engine.probe import _remember, probe_key
from localchat.engine.settings import LlamaSettings
from localchat.types import PromptSpec, SamplingParams
path = Path(sys.argv[1])
_remember(probe_key(path))  # as if it had passed the first-load check: no net under it
backend = load_backend(LlamaSettings(model_path=path, n_ctx=256))
print("".join(backend.stream(PromptSpec("Hello"), SamplingParams(max_tokens=4))))
"""


@pytest.mark.parametrize("make", [aborting_gguf, rwkv_tokenizer_gguf])
def test_without_the_first_load_check_it_is_still_one_line_and_no_stdout(
    make: object, tmp_path: Path, localchat_home: Path
) -> None:
    """In the main process: a ggml abort goes through the library's abort callback (one
    line, exit 7, no gdb backtrace); a broken tokenizer is refused (exit 6)."""
    path = make(tmp_path)  # type: ignore[operator]
    run = subprocess.run(
        [sys.executable, "-c", LOAD_DIRECTLY, str(path)],
        capture_output=True, text=True, env=localchat_env(localchat_home), timeout=120,
    )  # fmt: skip
    assert run.stdout == ""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if make is aborting_gguf:
        assert run.returncode == ExitCode.ENGINE_FAILED, run.stderr
        assert lines == [lines[0]] and lines[0].startswith("localchat: error: llama.cpp aborted")
        assert "GGML_ASSERT" in lines[0] or "n_expert" in lines[0]
    else:
        assert run.returncode != 0 and "token ids outside its vocabulary" in run.stderr
    assert "gdb" not in run.stderr and "backtrace" not in run.stderr.lower()
