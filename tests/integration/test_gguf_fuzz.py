"""Fuzz: mutated GGUF headers through ``show``, ``plan`` and ``ask`` (issue 9, "done means").

A few hundred seeded mutations of a small llama model's header (bit flips, bytes set
to 0x00/0xFF, 8-byte fields overwritten with extreme values, cuts) run through the
real CLI in one child process under an address-space limit.  Every run must end with
exit 0 or a documented code and one short line: never a signal, a traceback, an
"internal error", a hang, or unbounded memory.  ``ask`` (real llama.cpp) runs on a
subset, as each file that passes validation costs a real load.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from localchat.gguf import read_gguf_header
from tests.fixtures.gguf_files import tiny_spec, write_gguf
from tests.integration.cli import localchat_env

pytestmark = [pytest.mark.llama, pytest.mark.slow]

N_MUTATIONS = 300
ASK_EVERY = 6  # ask on one mutation in six (a real llama.cpp load each)
ADDRESS_SPACE_BYTES = 6 << 30
MAX_RSS_KIB = 1 << 20  # 1 GiB for the whole run
EXTREMES = (0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, 10**8, 64 << 20)
DOCUMENTED = {ExitCode.OK, ExitCode.USAGE, ExitCode.MODEL_NOT_FOUND, ExitCode.DOES_NOT_FIT,
              ExitCode.DOWNLOAD_FAILED, ExitCode.CORRUPT_MODEL_FILE, ExitCode.ENGINE_FAILED}  # fmt: skip

RUNNER = r"""
import contextlib, io, json, resource, sys
from unittest.mock import patch
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from localchat.cli.main import main
results = []
for line in sys.stdin:
    argv = json.loads(line)
    err = io.StringIO()
    out = io.StringIO()
    code = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
            patch("sys.stdin", io.TextIOWrapper(io.BytesIO(b""))):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            code = "raised " + type(exc).__name__
    results.append({"argv": argv, "code": code, "err": err.getvalue()[-2000:]})
print(json.dumps({"results": results,
                  "max_rss_kib": next(int(line.split()[1]) for line in open("/proc/self/status")
                                      if line.startswith("VmHWM"))}))
"""


def mutate(header: bytes, tensor_table_at: int, rng: random.Random) -> bytes:
    """One random mutation, aimed mostly at the key/values and the tensor table."""
    data = bytearray(header)
    region = rng.random()
    if region < 0.55:
        offset = rng.randrange(4, min(1024, len(data)))
    elif region < 0.9:
        offset = rng.randrange(tensor_table_at, len(data))
    else:
        offset = rng.randrange(4, len(data))
    kind = rng.randrange(4)
    if kind == 0:
        data[offset] ^= 1 << rng.randrange(8)
    elif kind == 1:
        data[offset] = rng.choice((0x00, 0xFF))
    elif kind == 2 and offset + 8 <= len(data):
        data[offset : offset + 8] = struct.pack("<Q", rng.choice(EXTREMES))
    else:
        del data[rng.randrange(offset, len(data)) :]
    return bytes(data)


def test_mutated_headers_never_crash(tmp_path: Path, localchat_home: Path) -> None:
    spec = tiny_spec()
    spec.metadata["tokenizer.ggml.merges"] = ["a b"]
    base = write_gguf(tmp_path / "base.gguf", spec)[0]
    header = read_gguf_header(base)
    header_bytes = base.read_bytes()[: header.data_offset_bytes]
    tensor_table_at = header.data_offset_bytes - 40 * len(header.tensors)
    size = base.stat().st_size
    rng = random.Random(9)
    commands = []
    for i in range(N_MUTATIONS):
        path = tmp_path / f"m{i:03d}.gguf"
        with path.open("wb") as out:
            out.write(mutate(header_bytes, tensor_table_at, rng))
            out.truncate(size)  # the (sparse) tensor data keeps its size
        commands += [["show", str(path)], ["plan", str(path), "--cpu-only"]]
        if i % ASK_EVERY == 0:
            commands.append(["ask", "-m", str(path), "--max-tokens", "1", "hi"])
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(ADDRESS_SPACE_BYTES)],
        input="\n".join(json.dumps(c) for c in commands),
        capture_output=True, text=True, timeout=600, env=localchat_env(localchat_home),
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])  # no signal, no crash
    report = json.loads(done.stdout.strip().splitlines()[-1])
    failures = [r for r in report["results"] if not clean(r)]
    assert not failures, json.dumps(failures[:5], indent=1)
    by_code: dict[str, int] = {}
    for r in report["results"]:
        key = f"{r['argv'][0]} exit {r['code']}"
        by_code[key] = by_code.get(key, 0) + 1
    print(sorted(by_code.items()), f"max RSS {report['max_rss_kib'] // 1024} MiB")
    refused = sum(1 for r in report["results"] if r["code"] != 0)
    assert refused > len(commands) // 3  # the mutations really are hostile
    assert report["max_rss_kib"] < MAX_RSS_KIB


def clean(result: dict) -> bool:
    """Exit 0, or a documented code with exactly one short ``localchat: error:`` line."""
    code, err = result["code"], result["err"]
    if code not in DOCUMENTED or "Traceback" in err or "internal error" in err:
        return False
    if code == ExitCode.OK:
        return True
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[-1].startswith("localchat: error: ") and len(lines[-1]) < 400
