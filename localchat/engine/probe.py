"""A model's first load runs in a child process, so llama.cpp aborting cannot take us down.

llama.cpp ends the whole process (``GGML_ASSERT`` → SIGABRT, with a backtrace on
stdout) on some malformed files.  ``gguf.checks`` refuses every case we know of;
this is the net under it: the first time a file is loaded with this llama.cpp
build, a child process loads it (CPU only, memory-mapped, a small context, no
weight repacking, so it is quick), tokenizes a short text and decodes one token with
it (a file whose tokenizer is broken passes a load and dies at the first prompt),
and its output goes to a temp file.  A crash there, or a tokenizer that answers
with ids outside its vocabulary, becomes one ``CorruptModelFile``/``EngineError``
line here, with the TUI and the history untouched.  Files that passed are
remembered (by path, size, mtime and build) and load directly afterwards.

Run as ``python -m localchat.engine.probe MODEL_PATH`` (the child side).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localchat.engine.interrupt import loads_cancelled
from localchat.errors import CorruptModelFile, EngineError, ExitCode, Interrupted, LocalchatError
from localchat.jsonfile import read_json, update_json
from localchat.paths import data_dir
from localchat.types import SamplingParams

PROBE_CTX_TOKENS = 256
PROBE_TIMEOUT_S = 600.0
PROBE_TEXT = "Hello, world! 1 + 1 = 2."
CLEAN_LOAD_FAILURE = 3  # the child's exit code when llama.cpp refused the file without crashing
BROKEN_MODEL = 4  # ... when it loaded but its tokenizer or first decode is broken
BROKEN_MARKER = "localchat-probe: "
MAX_REMEMBERED = 200
_OUTPUT_BYTES = 1 << 20  # llama.cpp's load log, then the abort message


def probe_record_file() -> Path:
    return data_dir() / "loaded-models.json"


def check_first_load(model_path: Path) -> None:
    """Load ``model_path`` in a child process unless it loaded with this build before.

    Raises ``CorruptModelFile`` / ``EngineError`` when the child crashed.  A clean
    failure in the child is left for the real load to report with its usual message.
    """
    key = probe_key(model_path)
    if key is None or key in _remembered():
        return
    returncode, output = _run_child(model_path)
    if returncode == 0:
        _remember(key)
    elif returncode == BROKEN_MODEL:
        raise _broken_error(model_path, output)
    elif returncode < 0:
        raise _crash_error(model_path, -returncode, output)


def probe_key(model_path: Path) -> str | None:
    try:
        stat = os.stat(model_path)
    except OSError:
        return None
    return f"{Path(model_path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{_build_id()}"


def _build_id() -> str:
    """The llama-cpp-python version and its shared library's identity."""
    from importlib import metadata
    from importlib.util import find_spec

    try:
        version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        version = "?"
    spec = find_spec("llama_cpp")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    libs: list[str] = []
    for folder in folders:
        for lib in sorted((Path(folder) / "lib").glob("libllama*")):
            stat = lib.stat()
            libs.append(f"{lib.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return f"{version}|{','.join(libs)}"


def _remembered() -> set[str]:
    keys = read_json(probe_record_file()).get("loaded", [])
    return set(keys) if isinstance(keys, list) else set()


def _remember(key: str) -> None:
    def add(data: dict[str, Any]) -> None:
        keys = [k for k in data.get("loaded", []) if isinstance(k, str) and k != key]
        data["loaded"] = [*keys, key][-MAX_REMEMBERED:]

    with contextlib.suppress(OSError, TimeoutError):  # forgetting costs one more probe
        update_json(probe_record_file(), add)


def _run_child(model_path: Path) -> tuple[int, str]:
    """(exit status, the child's output); Ctrl-C stops the child and propagates."""
    command = [sys.executable, "-m", "localchat.engine.probe", str(model_path)]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env={**os.environ, "GGML_NO_BACKTRACE": "1"},  # no gdb attach on abort (as here)
        )
        try:
            returncode = _wait(child)
        except BaseException:  # Ctrl-C, or the app quitting: never leave the child behind
            child.kill()
            child.wait()
            raise
        if returncode is None:
            return CLEAN_LOAD_FAILURE, ""  # too slow to tell: the real load goes ahead
        output.seek(0)
        return returncode, output.read(_OUTPUT_BYTES).decode("utf-8", errors="replace")


def _wait(child: subprocess.Popen[bytes]) -> int | None:
    """The child's exit status; None after ``PROBE_TIMEOUT_S``; ``Interrupted`` when the
    app cancelled the load (``engine.interrupt.cancel_loads``)."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            return child.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if loads_cancelled():
                raise Interrupted("loading was cancelled") from None
    child.kill()
    child.wait()
    return None


def _crash_error(model_path: Path, signal_number: int, output: str) -> LocalchatError:
    name = _signal_name(signal_number)
    reason = _crash_reason(output)
    detail = f": {reason}" if reason else ""
    if signal_number == signal.SIGABRT:
        return CorruptModelFile(
            f"llama.cpp aborted loading {model_path.name} ({name}){detail}",
            hint="the file is corrupt or needs a newer llama.cpp; delete it or try another quant",
        )
    if signal_number == signal.SIGKILL:
        return EngineError(
            f"loading {model_path.name} was killed ({name}; out of memory?)",
            hint="free memory or pick a smaller quant",
        )
    if signal_number == signal.SIGILL:
        return EngineError(
            f"llama.cpp crashed loading {model_path.name} ({name}: illegal instruction)",
            hint="this llama.cpp build uses CPU instructions this machine lacks; "
            "run `localchat doctor`",
        )
    return EngineError(
        f"llama.cpp crashed loading {model_path.name} ({name}){detail}",
        hint="the file may be corrupt; try another quant",
    )


def _broken_error(model_path: Path, output: str) -> CorruptModelFile:
    reason = next(
        (line.split(BROKEN_MARKER, 1)[1] for line in output.splitlines() if BROKEN_MARKER in line),
        "it fails a test decode",
    )
    return CorruptModelFile(
        f"{model_path.name} loads but cannot generate: {reason}",
        hint="the file is broken or needs a newer llama.cpp; delete it or try another file",
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _crash_reason(output: str) -> str:
    """The line of llama.cpp's output that says why it aborted, cut short."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in ("GGML_ASSERT", "what():", "error", "fatal"):
        for line in lines:
            if marker in line:
                text = _reason_text(line, marker)
                return text if len(text) <= 160 else text[:159] + "…"
    return ""


def _reason_text(line: str, marker: str) -> str:
    if marker == "GGML_ASSERT":
        return line.split(": ", 1)[-1]
    if marker == "what():":  # std::terminate's report of an uncaught C++ exception
        return "uncaught C++ exception: " + line.split(marker, 1)[1].strip()
    return line


def _child_main(model_path: str) -> int:
    """Load the model as cheaply as llama.cpp allows, tokenize a short text and decode
    one token with it; the exit status is the answer (a crash is one too)."""
    try:
        return _load_and_decode(Path(model_path))
    except LocalchatError as exc:
        if exc.exit_code == ExitCode.CORRUPT_MODEL_FILE:
            print(f"{BROKEN_MARKER}{exc.message}", file=sys.stderr, flush=True)
            return BROKEN_MODEL
        return CLEAN_LOAD_FAILURE


def _load_and_decode(model_path: Path) -> int:
    # heavy: loads llama.cpp, in the child only
    from localchat.llamacpp import library
    from localchat.llamacpp.batch import Batch
    from localchat.llamacpp.context import DECODE_OK, ContextParams, LlamaContext
    from localchat.llamacpp.model import LlamaModel, ModelParams
    from localchat.llamacpp.sampler import Sampler

    lib = library()
    lib.log.to_file, lib.log.echo_to_stderr = False, True  # the parent keeps our output
    params = ModelParams(n_gpu_layers=0, use_mmap=True, repack=False, abortable=False)
    model = LlamaModel(lib.native, model_path, params)
    cpus = os.cpu_count() or 1
    context_params = ContextParams(
        n_ctx=PROBE_CTX_TOKENS, n_batch=PROBE_CTX_TOKENS, n_threads=cpus, n_threads_batch=cpus
    )
    context = LlamaContext(model, context_params)
    tokens = model.tokenize(PROBE_TEXT, add_special=model.add_bos)[: PROBE_CTX_TOKENS // 2]
    batch = Batch(max(len(tokens), 1), 1)
    batch.add_run(tokens or [0], 0, 0, last_logits=True)
    status = context.decode(batch)
    if status != DECODE_OK:
        raise CorruptModelFile(f"llama.cpp cannot decode its first tokens (llama_decode: {status})")
    sampler = Sampler(model, SamplingParams(temperature=0.0), seed=0)
    token = sampler.sample(context, batch.n_tokens - 1)
    if not 0 <= token < model.n_vocab:
        raise CorruptModelFile(f"llama.cpp picked token {token} outside the vocabulary")
    model.piece(token, special=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
