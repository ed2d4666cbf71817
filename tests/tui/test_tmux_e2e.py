"""End to end in a real terminal: start ``localchat`` in tmux, type a question, read the reply.

The scripted engine (``LOCALCHAT_FAKE_ENGINE=1``) always runs; the real gemma-3-270m run is
marked ``llama`` and also checks that llama.cpp's log never reaches the screen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from localchat.history import HistoryStore

REPO = Path(__file__).resolve().parents[2]
LLAMA_LOG_MARKERS = ("llama_model_loader", "load_tensors", "llama_context", "ggml_")

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        self.name = f"localchat-e2e-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
        line = f"cd {_quote(str(REPO))} && env {exports} " + " ".join(map(_quote, command))
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]),
             line],
            check=True,
        )  # fmt: skip

    def screen(self) -> str:
        result = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return result.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        flags = ["-l"] if literal else []
        subprocess.run(["tmux", "send-keys", "-t", self.name, *flags, *keys], check=True)

    def wait_for(self, condition: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def start_app(localchat_home: Path):
    sessions: list[Tmux] = []

    def start(*args: str, fake: bool, size: tuple[int, int] = (100, 30)) -> Tmux:
        env = {
            "LOCALCHAT_HOME": str(localchat_home),
            "PYTHONPATH": str(REPO),
            "TERM": "xterm-256color",
            "HF_HUB_OFFLINE": "1",
        }
        if fake:
            env["LOCALCHAT_FAKE_ENGINE"] = "1"
        session = Tmux([sys.executable, "-m", "localchat", *args], env, size)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def ask_and_read(app: Tmux, question: str, done: Callable[[str], bool], timeout: float) -> str:
    app.wait_for(lambda s: "Message (Enter sends)" in s, timeout=30)
    app.keys(question, literal=True)
    app.wait_for(lambda s: question in s, timeout=10)
    app.keys("Enter")
    return app.wait_for(done, timeout=timeout)


def test_question_and_reply_in_tmux(start_app, localchat_home: Path) -> None:
    app = start_app(fake=True)
    screen = ask_and_read(
        app, "What is a GGUF file?", lambda s: "tok/s" in s and "That is all." in s, timeout=30
    )
    assert "Here is a short answer to What is a GGUF file?" in screen
    assert "print('hello from the scripted model')" in screen
    app.keys("C-q")
    time.sleep(1.0)
    with HistoryStore(localchat_home / "data" / "history.sqlite3") as store:
        conversation = store.latest_conversation()
        assert conversation is not None and conversation.title == "What is a GGUF file?"
        assert [m.role for m in store.messages(conversation.id)] == ["user", "assistant"]


def test_80x24_terminal_shows_whole_screens(start_app) -> None:
    """In a real 80×24 terminal: whole footers, every Models column, the Settings form with its
    Save button, and typing that lands in the filter and the first field."""
    app = start_app(fake=True, size=(80, 24))
    screen = app.wait_for(lambda s: "Message (Enter sends)" in s, timeout=30)
    footer = screen.rstrip("\n").splitlines()[-1]
    assert "f4 Settings" in footer and "^p palette" in footer, footer
    app.keys("F2")
    screen = app.wait_for(lambda s: "On disk" in s and "GB" in s, timeout=60)
    assert "Fit" in screen
    app.keys("gemma-3-2", literal=True)  # typed on the list: it goes to the filter
    screen = app.wait_for(
        lambda s: "gemma-3-2" in s.splitlines()[2] and "gemma-3-270m   " in s, timeout=10
    )  # the whole text reached the filter line (keys arrive one by one)
    assert "huozi3" not in screen
    app.keys("Escape")
    app.keys("F4")
    screen = app.wait_for(lambda s: "Save" in s and "Theme" in s, timeout=10)
    app.keys("my-model", literal=True)  # the first field has the focus
    app.wait_for(lambda s: "Default model  my-model" in s, timeout=10)
    app.keys("C-q")


@pytest.mark.llama
@pytest.mark.slow
def test_real_model_in_tmux_keeps_llama_logs_off_screen(start_app, gemma_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from localchat.settings import Settings, save_settings

    save_settings(Settings(max_tokens=32, temperature=0.0, context_size=2048))
    app = start_app("-m", str(gemma_path), fake=False)
    app.wait_for(lambda s: "gemma" in s.lower() and "loading" not in s.lower(), timeout=120)
    screen = ask_and_read(app, "Hello!", lambda s: "tok/s" in s, timeout=120)
    assert not [m for m in LLAMA_LOG_MARKERS if m in screen], screen
    assert "Traceback" not in screen
    assert "ctx " in screen and "/2,048" in screen
    app.keys("C-q")
