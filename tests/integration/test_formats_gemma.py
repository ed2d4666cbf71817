"""The real Gemma 3 270M GGUF: the gemma prompt tokenizes to one BOS and proper turn tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.formats import make_stop_checker, resolve_format
from localchat.types import Message

pytestmark = pytest.mark.llama
llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def gemma(gemma_path: Path):
    llm = llama_cpp.Llama(model_path=str(gemma_path), n_ctx=256, verbose=False)
    yield llm
    llm.close()


def test_gemma_prompt_on_the_real_model(gemma) -> None:
    fmt = resolve_format(None, {"general.architecture": "gemma3"})  # the gemma family default
    spec = fmt.prompt([Message("system", "Be brief."), Message("user", "Say hello.")])
    assert spec.has_bos
    tokens = gemma.tokenize(spec.text.encode("utf-8"), add_bos=not spec.has_bos, special=True)
    assert tokens[:2] == [2, 105] and tokens.count(2) == 1  # <bos><start_of_turn>
    for token_id in spec.stop_token_ids:
        assert gemma.detokenize([token_id], special=True).decode() in spec.stop_strings
    result = gemma.create_completion(
        tokens,
        max_tokens=16,
        temperature=0.0,
        stop=list(spec.stop_strings),
        stopping_criteria=llama_cpp.StoppingCriteriaList([make_stop_checker(spec.stop_token_ids)]),
    )
    assert "<end_of_turn>" not in result["choices"][0]["text"]
