"""The grammar sampler's draw-then-check order (``llamacpp/sampler.py``) on the real Gemma
3 270M: it never lets a refused token through, whatever the seed, the temperature or the
penalties, and at temperature 0 it picks exactly the tokens masking the whole vocabulary
first picks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localchat.types import Message, ReplyFormat, SamplingParams

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
jsonschema = pytest.importorskip("jsonschema")

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"enum": ["cat", "dog", "none"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
    },
    "required": ["name", "age", "pet", "tags"],
    "additionalProperties": False,
}
ASK = [Message("user", "Describe a person.")]


@pytest.fixture(scope="module")
def model(gemma_path: Path) -> Iterator[Any]:
    from localchat.api import open_model

    loaded = open_model(str(gemma_path), n_ctx=1024, n_threads=2, local=True)
    yield loaded
    loaded.close()


@contextlib.contextmanager
def grammar_first() -> Iterator[None]:
    """The reference order: the grammar masks the whole vocabulary before every draw."""
    from localchat.llamacpp import sampler as module
    from localchat.llamacpp._bindings import C

    def sample(self: Any, context: Any, index: int) -> int:
        logits = C.llama_get_logits_ith(context.handle, index)
        token = self._candidates.draw(self._chain, logits, first=self._grammar)
        C.llama_sampler_accept(self._grammar, token)
        C.llama_sampler_accept(self._chain, token)
        return token

    original = module.Sampler.sample
    module.Sampler.sample = sample
    try:
        yield
    finally:
        module.Sampler.sample = original


def reply(model: Any, sampling: SamplingParams) -> str:
    return "".join(model.stream_chat(ASK, sampling, reply_format=ReplyFormat(SCHEMA)))


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, max_tokens=200),
        SamplingParams(temperature=1.0, max_tokens=200, repeat_penalty=1.3),
        SamplingParams(temperature=0.7, max_tokens=200, presence_penalty=1.0),
    ],
    ids=["wide open", "repeat penalty", "presence penalty"],
)
def test_every_sampled_reply_obeys_the_grammar(model: Any, sampling: SamplingParams) -> None:
    from dataclasses import replace

    for seed in range(2):
        text = reply(model, replace(sampling, seed=seed))
        assert model.last_stats.finish_reason == "stop", text
        jsonschema.validate(json.loads(text), SCHEMA)


def test_greedy_picks_what_grammar_first_picks(model: Any) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=200)
    fast = reply(model, greedy)
    with grammar_first():
        reference = reply(model, greedy)
    assert fast == reference
    jsonschema.validate(json.loads(fast), SCHEMA)
