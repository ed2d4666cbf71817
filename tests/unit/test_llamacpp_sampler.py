"""Lazy-grammar trigger patterns: refused before llama.cpp sees them when its
``std::regex`` would throw through the C API (and end the process).

The patterns below that ``check_trigger_pattern`` accepts are then handed to the real
llama.cpp in a child process: none may crash it.  The refused ones each crashed it
when tried by hand (``terminate called after throwing an instance of
'std::regex_error'``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import InvalidRequest
from localchat.llamacpp.sampler import check_trigger_pattern
from tests.conftest import REPO_ROOT

CRASH_LLAMA_CPP = [
    "(?<=a)b",  # lookbehind
    "a{,5}",  # Python's {,n}
    "(?i)x",  # inline flags
    "(?P<n>x)",  # named groups
    "(?<n>x)",
    "(?#c)",  # comments
    "(?s:.)",
    "{",  # a literal brace
    "a{1",
    "(a",  # Python refuses these too
    "a)",
    "\\p{L}",
]
ACCEPTED = [
    "<tool_call>",
    "\\[TOOL_CALLS\\]",
    ".*<tool_call>",
    "^\\s*\\{",
    "[\\s\\S]*?(<tool>)",
    "(?:a)",
    "(?=a)",
    "(?!a)",
    "a{2,}",
    "a{3}?",
    "a{2,4}",
    "[^a-z]",
    "[{}]",
    '\\{"name"',
    "\\bword\\b",
    "\\x41",
    "a*+",
    "}",
    "]",
]

TRY_IN_LLAMA_CPP = r"""
import json, sys
from pathlib import Path
from localchat.llamacpp import library
from localchat.llamacpp.model import LlamaModel, ModelParams
from localchat.llamacpp.sampler import Sampler
from localchat.types import SamplingParams

model = LlamaModel(library().native, Path(sys.argv[1]), ModelParams())
for pattern in json.loads(sys.argv[2]):
    print(pattern, flush=True)  # the last line printed names the culprit of a crash
    sampling = SamplingParams(grammar='root ::= "x"', grammar_triggers=(pattern,))
    Sampler(model, sampling, seed=0).close()
print("all built", flush=True)
"""


@pytest.mark.parametrize("pattern", CRASH_LLAMA_CPP)
def test_a_pattern_std_regex_throws_on_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidRequest, match="trigger pattern"):
        check_trigger_pattern(pattern)


def test_the_accepted_patterns_do_not_crash_llama_cpp(gemma_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    for pattern in ACCEPTED:
        check_trigger_pattern(pattern)
    run = subprocess.run(
        [sys.executable, "-c", TRY_IN_LLAMA_CPP, str(gemma_path), json.dumps(ACCEPTED)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout.splitlines()[-1:], run.stderr[-500:])
    assert run.stdout.splitlines()[-1] == "all built"
