"""Structured output and tool calls on the AWQ backend: the real tiny AWQ Llama
(``tests.fixtures.awq_models``) on transformers + GPTQModel, the grammar enforced on its
logits by the real llguidance — the same GBNF llama.cpp's sampler takes.

The tiny model was trained on a handful of chat lines and knows no JSON: whatever it
writes under a grammar parses and validates only because the grammar holds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from localchat.engine import load_backend
from localchat.engine.awq.backend import IncrementalDetokenizer
from localchat.engine.awq.constrained import GrammarTokenizer
from localchat.engine.settings import AwqSettings
from localchat.types import Message, PromptSpec, SamplingParams, ToolSpec

pytestmark = [pytest.mark.awq, pytest.mark.slow]
pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

SKY = "<s><|user|>\nwhat color is the sky</s>\n<|assistant|>\n"
SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"enum": ["blue", "green", "red"]},
        "sure": {"type": "boolean"},
        "note": {"type": "string", "maxLength": 12},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
    },
    "required": ["color", "sure", "note", "count"],
    "additionalProperties": False,
}
WEATHER = ToolSpec(
    "get_weather",
    "Current weather",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}},
     "required": ["city"]},
)  # fmt: skip


@pytest.fixture(scope="module")
def model(awq_tiny) -> Iterator:
    from localchat.api import open_model

    loaded = open_model(str(awq_tiny["llama"][1]), n_ctx=512, local=True)
    yield loaded
    loaded.close()


def test_a_schema_holds_the_backend(awq_tiny) -> None:
    from localchat.formats.structured import grammar_for_json_schema

    backend = load_backend(AwqSettings(awq_tiny["llama"][1], n_ctx=256))
    try:
        prompt = PromptSpec(SKY, ("</s>",), has_bos=True)
        for seed in (1, 2):
            sampling = SamplingParams(
                temperature=1.0, seed=seed, max_tokens=120, grammar=grammar_for_json_schema(SCHEMA)
            )
            text = "".join(backend.stream(prompt, sampling))
            assert backend.last_stats.finish_reason == "stop", text
            jsonschema.validate(json.loads(text), SCHEMA)
        free = "".join(backend.stream(prompt, SamplingParams(temperature=0.0, max_tokens=20)))
        with pytest.raises(ValueError):
            json.loads(free)  # without the grammar this model writes no JSON
    finally:
        backend.close()


def test_the_python_api_on_an_awq_model(model) -> None:
    data = model.structured([Message("user", "what color is the sky")], SCHEMA)
    jsonschema.validate(data, SCHEMA)
    reply = model.call_tools("what color is grass", [WEATHER], choice="required", parallel=False)
    assert [call.name for call in reply.calls] == ["get_weather"]
    jsonschema.validate(dict(reply.calls[0].arguments), dict(WEATHER.parameters))


def test_a_lazy_grammar_waits_for_its_trigger(model) -> None:
    """Free text until the trigger pattern shows in the reply; from there every token is
    held to the grammar (real llguidance, the model's real tokenizer)."""
    import torch

    loaded = model.backend._model()
    tokenizer = GrammarTokenizer(loaded.tokenizer, {loaded.tokenizer.eos_token_id})
    grammar = 'root ::= "CALL" " "? "{" [a-z]+ "}"'
    sampling = SamplingParams(grammar=grammar, grammar_triggers=("CALL",))
    constraint = tokenizer.constraint(
        sampling, lambda: IncrementalDetokenizer(loaded.tokenizer, True)
    )
    assert constraint is not None
    logits = torch.zeros(357)
    before = loaded.tokenizer("the sky is blue ", add_special_tokens=False)["input_ids"]
    for token in before:
        assert torch.isfinite(constraint.mask(torch, logits)).all()  # nothing masked yet
        constraint.accept(token)
    for token in loaded.tokenizer("CALL {", add_special_tokens=False)["input_ids"]:
        constraint.accept(token)
    allowed = torch.isfinite(constraint.mask(torch, logits)).nonzero().flatten().tolist()
    texts = {loaded.tokenizer.decode([t]) for t in allowed}
    assert allowed and all(text.isalpha() and text.islower() for text in texts), texts
