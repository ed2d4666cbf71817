"""Where the engine's own log goes: its log file, and stderr too with ``--verbose``."""

from __future__ import annotations

from localchat.engine.logs import ROUTER


def echo_engine_log(on: bool) -> None:
    """Also show llama.cpp's own log on stderr (``--verbose``), or only log it to its file."""
    ROUTER.echo_to_stderr = on
