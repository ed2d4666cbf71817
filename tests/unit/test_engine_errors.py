"""A llama.cpp failure while generating is the engine's error (exit 7), not "internal error"."""

from __future__ import annotations

import pytest

from localchat.engine.llama import _quietly
from localchat.errors import EngineError, ExitCode


def test_a_failed_decode_becomes_engine_error() -> None:
    def tokens():  # llama-cpp-python's Llama.generate raises this when llama_decode fails
        yield 1
        raise RuntimeError("llama_decode returned -3")

    stream = _quietly(tokens())
    assert next(stream) == 1
    with pytest.raises(EngineError, match="llama_decode returned -3") as caught:
        next(stream)
    assert caught.value.exit_code == ExitCode.ENGINE_FAILED
