"""``localchat ask`` end to end: the real CLI, real llama.cpp, the real Gemma 3 270M Q4_K_M."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from tests.integration.cli import (
    assert_one_clean_error_line,
    default_sigint,
    localchat_env,
    run_localchat,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")

FIXED = ("--temperature", "0", "--seed", "7", "--max-tokens", "24")


def test_tokens_stream_as_they_are_produced(localchat_home: Path, gemma_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", str(gemma_path),
         "--max-tokens", "48", "--temperature", "0", "Tell me a story about a dragon."],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=localchat_env(localchat_home),
    )  # fmt: skip
    arrivals: list[float] = []
    while os.read(process.stdout.fileno(), 64):
        arrivals.append(time.perf_counter())
    assert process.wait(timeout=120) == 0, process.stderr.read()
    # A streamed answer arrives in many reads spread over the generation, not in one write.
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 0.2


def test_seed_and_temperature_zero_repeat_exactly(localchat_home: Path, gemma_path: Path) -> None:
    first = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *FIXED, "Name a colour.")
    second = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *FIXED, "Name a colour.")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout == second.stdout


def test_json_has_the_documented_fields(localchat_home: Path, gemma_path: Path) -> None:
    result = run_localchat(localchat_home, "ask", "--json", "-m", "gemma-3-270m", *FIXED, "Hello")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    for field in ("text", "model", "file", "plan", "prompt_tokens", "completion_tokens",
                  "time_to_first_token_s", "decode_tokens_per_s"):  # fmt: skip
        assert field in payload, field
    assert payload["model"] == "gemma-3-270m"
    assert Path(payload["file"]).resolve() == gemma_path.resolve()
    assert 0 < payload["completion_tokens"] <= 24
    assert payload["decode_tokens_per_s"] > 0
    assert payload["plan"]["n_ctx"] >= 256


def test_stdin_is_put_before_the_prompt(localchat_home: Path, gemma_path: Path) -> None:
    piped = "diff --git a/x b/x\n+print('hi')\n"
    with_stdin = run_localchat(
        localchat_home, "ask", "--json", "-m", str(gemma_path), *FIXED, "review this", stdin=piped
    )
    alone = run_localchat(
        localchat_home, "ask", "--json", "-m", str(gemma_path), *FIXED, "review this"
    )
    assert with_stdin.returncode == 0, with_stdin.stderr
    assert (
        json.loads(with_stdin.stdout)["prompt_tokens"] > json.loads(alone.stdout)["prompt_tokens"]
    )
    from localchat.history import HistoryStore

    with HistoryStore(localchat_home / "data" / "history.sqlite3") as history:
        conversations = history.list_conversations()
        user_texts = [
            m.content for c in conversations for m in history.messages(c.id) if m.role == "user"
        ]
    assert piped.strip("\n") + "\n\nreview this" in user_texts


def test_prompt_from_stdin_alone(localchat_home: Path, gemma_path: Path) -> None:
    result = run_localchat(
        localchat_home, "ask", "-m", str(gemma_path), *FIXED, stdin="Hello there"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_no_prompt_is_a_usage_error(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask")
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr


def test_llama_log_stays_off_the_terminal_unless_verbose(
    localchat_home: Path, gemma_path: Path
) -> None:
    quiet = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *FIXED, "Hi")
    assert quiet.returncode == 0
    assert "llama_" not in quiet.stderr and "load_tensors" not in quiet.stderr
    assert "load_tensors" in (localchat_home / "logs" / "llama.log").read_text()
    loud = run_localchat(localchat_home, "ask", "--verbose", "-m", str(gemma_path), *FIXED, "Hi")
    assert "load_tensors" in loud.stderr


def test_missing_file_is_model_not_found(localchat_home: Path, tmp_path: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", str(tmp_path / "absent.gguf"), "hi")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)


def test_unknown_name_is_model_not_found(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", "no-such-model", "hi")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)


def test_hub_model_not_on_disk_offline_says_so(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", "someone/Some-Model-GGUF:Q4_K_M", "hi")
    assert result.returncode in (ExitCode.MODEL_NOT_FOUND, ExitCode.DOWNLOAD_FAILED)
    assert_one_clean_error_line(result, result.returncode)


@pytest.mark.parametrize("keep_bytes", [0, 64, 4096, 4_000_000, 200_000_000])
def test_truncated_gguf_is_corrupt(
    localchat_home: Path, gemma_path: Path, tmp_path: Path, keep_bytes: int
) -> None:
    broken = tmp_path / "truncated.gguf"
    with gemma_path.open("rb") as source, broken.open("wb") as target:
        target.write(source.read(keep_bytes))
    result = run_localchat(localchat_home, "ask", "-m", str(broken), "hi")
    assert_one_clean_error_line(result, ExitCode.CORRUPT_MODEL_FILE)


def test_garbage_file_is_corrupt(localchat_home: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"<html>404 Not Found</html>" * 100)
    result = run_localchat(localchat_home, "ask", "-m", str(garbage), "hi")
    assert_one_clean_error_line(result, ExitCode.CORRUPT_MODEL_FILE)


def test_ctrl_c_keeps_what_was_printed_and_exits_130(
    localchat_home: Path, gemma_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", str(gemma_path), "--temperature", "0",
         "--max-tokens", "2000", "Write a very long essay about the sea."],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=localchat_env(localchat_home),
        preexec_fn=default_sigint,
    )  # fmt: skip
    first = os.read(process.stdout.fileno(), 16)
    assert first
    process.send_signal(signal.SIGINT)
    rest = process.stdout.read()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == ExitCode.INTERRUPTED
    assert "Traceback" not in stderr
    printed = (first + rest).decode()
    assert len(printed.strip()) > 0
    from localchat.history import HistoryStore

    with HistoryStore(localchat_home / "data" / "history.sqlite3") as history:
        last = history.latest_conversation()
        replies = [m.content for m in history.messages(last.id) if m.role == "assistant"]
    assert replies and printed.strip().startswith(replies[0].strip()[:10])


def test_continue_last_conversation(localchat_home: Path, gemma_path: Path) -> None:
    first = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *FIXED, "My name is Ada.")
    second = run_localchat(localchat_home, "ask", "-c", "--json", *FIXED, "What is my name?")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    alone = run_localchat(
        localchat_home, "ask", "--json", "-m", str(gemma_path), *FIXED, "What is my name?"
    )
    # The continued chat carries the first turn, so its prompt is longer.
    assert json.loads(second.stdout)["prompt_tokens"] > json.loads(alone.stdout)["prompt_tokens"]


def test_no_network_falls_back_to_the_offline_model_quickly(
    localchat_home: Path, gemma_path: Path
) -> None:
    """README's first command without network: the default model can't be pulled (its hub
    host does not resolve), so ask says so on stderr and answers with the pip-delivered model."""
    started = time.perf_counter()
    result = run_localchat(
        localchat_home, "ask", *FIXED, "Why is the sky blue?",
        HF_HUB_OFFLINE="0", HF_ENDPOINT="http://hub.invalid",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "using the offline model gemma-3-270m" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.perf_counter() - started < 60  # no retry storm against a host that can't resolve
