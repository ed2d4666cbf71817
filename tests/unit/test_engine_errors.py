"""A llama.cpp failure while generating is the engine's error (exit 7), not "internal
error", and it ends only the streams it concerns (real llama.cpp, real gemma)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.errors import EngineError, ExitCode

pytestmark = [pytest.mark.llama]
pytest.importorskip("llama_cpp")


def test_a_failed_decode_becomes_engine_error_for_its_stream_only(gemma_path: Path) -> None:
    from localchat.engine.llama.scheduler import Scheduler
    from localchat.engine.llama.slots import Request, TokenChannel
    from localchat.llamacpp import library
    from localchat.llamacpp.context import ContextParams, LlamaContext
    from localchat.llamacpp.model import LlamaModel, ModelParams
    from localchat.llamacpp.sampler import Sampler
    from localchat.types import SamplingParams

    model = LlamaModel(library().native, gemma_path, ModelParams())
    context = LlamaContext(model, ContextParams(n_ctx=512, n_seq_max=2, n_threads=2))
    scheduler = Scheduler(context, is_end=lambda token, stop_ids: False)
    greedy = SamplingParams(temperature=0.0)

    def request(prompt: list[int]) -> tuple[Request, TokenChannel]:
        channel = TokenChannel(scheduler.wake)
        sampler = Sampler(model, greedy, seed=0)
        return Request(prompt, [sampler], [channel], 8, frozenset()), channel

    good_prompt = model.tokenize("The sky is", add_special=True)
    # an id past the vocabulary: llama_decode refuses the batch (returns -1)
    bad, bad_channel = request([*good_prompt, model.n_vocab + 5])
    scheduler.submit(bad)
    with pytest.raises(EngineError, match="llama_decode returned -1") as caught:
        list(bad_channel.tokens())
    assert caught.value.exit_code == ExitCode.ENGINE_FAILED
    good, good_channel = request(good_prompt)
    scheduler.submit(good)
    assert len(list(good_channel.tokens())) == 8  # the next stream is not affected
    assert scheduler.close()
    context.close()
    model.close()
