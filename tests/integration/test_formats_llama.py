"""Real llama.cpp runs: generation ends exactly where each format says it must.

A tiny random-weight llama GGUF carries huozi3's vocabulary shape (57002 tokens,
``<|beginofutterance|>`` = 57000 and ``<|endofutterance|>`` = 57001).  A logits
processor forces the stop token after a few tokens; with the format's stop
checker llama.cpp ends there, without it llama.cpp runs on (57001 is not an
end-of-generation token to llama.cpp, just as eos 2 does not end huozi's turn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localchat.catalog import load_catalog
from localchat.formats import make_stop_checker, resolve_format
from localchat.types import Message

pytestmark = pytest.mark.llama
llama_cpp = pytest.importorskip("llama_cpp")

BEGIN_ID, END_ID, EOS_ID = 57000, 57001, 2
N_VOCAB, N_EMBD, N_FF, N_HEAD = 57002, 32, 64, 2
FORCE_AFTER = 5  # generated tokens before the stop token is forced
CONVERSATION = [
    Message("system", "你是一个智能助手"),
    Message("user", "你好"),
    Message("assistant", "你好！"),
    Message("user", "讲个笑话"),
]


def build_huozi_like_gguf(path: Path, special_type: int, favour: int | None = None) -> Path:
    """A 1-layer llama with random weights (or, with ``favour``, one that always picks it)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("huozi3 tiny test")
    writer.add_context_length(256)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(1)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    _add_vocab(writer, special_type)
    weights = _weight_maker(favour)
    ones = np.ones(N_EMBD, np.float32)
    writer.add_tensor("token_embd.weight", weights((N_VOCAB, N_EMBD), "embed"))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", weights((N_VOCAB, N_EMBD), "output"))
    writer.add_tensor("blk.0.attn_norm.weight", ones)
    for name in ("q", "k", "v", "output"):
        writer.add_tensor(f"blk.0.attn_{name}.weight", weights((N_EMBD, N_EMBD)))
    writer.add_tensor("blk.0.ffn_norm.weight", ones)
    writer.add_tensor("blk.0.ffn_gate.weight", weights((N_FF, N_EMBD)))
    writer.add_tensor("blk.0.ffn_up.weight", weights((N_FF, N_EMBD)))
    writer.add_tensor("blk.0.ffn_down.weight", weights((N_EMBD, N_FF)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _weight_maker(favour: int | None):
    """Random weights; or constant embeddings, zero layers and one hot output row.

    With ``favour`` the final hidden state is all ones, so the logit of
    ``favour`` is N_EMBD (32) and every other logit is 0: it is always picked.
    """
    rng = np.random.default_rng(0)

    def make(shape: tuple[int, ...], role: str = "") -> np.ndarray:
        if favour is None:
            return (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if role == "embed":
            return np.full(shape, 0.1, np.float32)
        out = np.zeros(shape, np.float32)
        if role == "output":
            out[favour] = 1.0
        return out

    return make


def _add_vocab(writer, special_type: int) -> None:
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, *[TokenType.BYTE] * 256]
    tokens += [f"▁w{i}" for i in range(len(tokens), BEGIN_ID)]
    types += [TokenType.NORMAL] * (BEGIN_ID - len(types))
    tokens += ["<|beginofutterance|>", "<|endofutterance|>"]
    types += [special_type, special_type]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(0)


@pytest.fixture(scope="module")
def huozi_like(tmp_path_factory: pytest.TempPathFactory):
    from gguf import TokenType

    path = build_huozi_like_gguf(tmp_path_factory.mktemp("gguf") / "c.gguf", TokenType.CONTROL)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def huozi_like_text_tokens(tmp_path_factory: pytest.TempPathFactory):
    """The same, but the utterance tokens are user-defined: they decode as text."""
    from gguf import TokenType

    path = tmp_path_factory.mktemp("gguf") / "u.gguf"
    build_huozi_like_gguf(path, TokenType.USER_DEFINED)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    yield llm
    llm.close()


def force_token_after(n_prompt: int, steps: int, token_id: int):
    """A logits processor: token ``token_id`` at generated position ``steps``; never eos."""

    def process(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = scores.copy()
        scores[EOS_ID] = scores[BEGIN_ID] = scores[END_ID] = -np.inf
        if len(input_ids) - n_prompt == steps:
            scores[:] = -np.inf
            scores[token_id] = 0.0
        return scores

    return process


def huozi_prompt():
    return resolve_format(load_catalog().get("huozi3"), {}).prompt(CONVERSATION)


def generate(llm, spec, *, with_checker: bool, max_tokens: int = 24) -> dict:
    tokens = llm.tokenize(spec.text.encode("utf-8"), add_bos=not spec.has_bos, special=True)
    criteria = [make_stop_checker(spec.stop_token_ids)] if with_checker else []
    return llm.create_completion(
        tokens,
        max_tokens=max_tokens,
        temperature=0.0,
        stop=list(spec.stop_strings),
        logits_processor=llama_cpp.LogitsProcessorList(
            [force_token_after(len(tokens), FORCE_AFTER, END_ID)]
        ),
        stopping_criteria=llama_cpp.StoppingCriteriaList(criteria),
    )


def test_prompt_tokenizes_to_the_utterance_tokens(huozi_like) -> None:
    spec = huozi_prompt()
    assert not spec.has_bos
    tokens = huozi_like.tokenize(spec.text.encode("utf-8"), add_bos=True, special=True)
    assert tokens[:2] == [1, BEGIN_ID] and tokens.count(1) == 1
    assert tokens.count(BEGIN_ID) == 5 and tokens.count(END_ID) == 4
    assert not llama_cpp.llama_vocab_is_eog(huozi_like._model.vocab, END_ID)


def test_generation_stops_at_endofutterance(huozi_like) -> None:
    result = generate(huozi_like, huozi_prompt(), with_checker=True)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "stop"
    # the forced stop token is the last one counted; nothing after it is kept
    assert result["usage"]["completion_tokens"] == FORCE_AFTER + 1
    assert "<|endofutterance|>" not in choice["text"]


def test_without_the_stop_token_llama_cpp_runs_on(huozi_like) -> None:
    result = generate(huozi_like, huozi_prompt(), with_checker=False, max_tokens=12)
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 12


def test_streaming_stops_too(huozi_like) -> None:
    spec = huozi_prompt()
    tokens = huozi_like.tokenize(spec.text.encode("utf-8"), add_bos=True, special=True)
    chunks = list(
        huozi_like.create_completion(
            tokens,
            max_tokens=24,
            temperature=0.0,
            stream=True,
            stop=list(spec.stop_strings),
            logits_processor=llama_cpp.LogitsProcessorList(
                [force_token_after(len(tokens), FORCE_AFTER, END_ID)]
            ),
            stopping_criteria=llama_cpp.StoppingCriteriaList(
                [make_stop_checker(spec.stop_token_ids)]
            ),
        )
    )
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "<|endofutterance|>" not in text


def test_stop_string_when_the_token_decodes_as_text(huozi_like_text_tokens) -> None:
    llm = huozi_like_text_tokens
    assert llm.detokenize([END_ID]) == b"<|endofutterance|>"
    result = generate(llm, huozi_prompt(), with_checker=False)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "<|endofutterance|>" not in choice["text"]


@pytest.mark.parametrize(("favour", "finish"), [(END_ID, "stop"), (BEGIN_ID, "length")])
def test_the_engine_stops_at_the_format_stop_token(tmp_path: Path, favour: int, finish: str):
    """localchat's own backend, fed the format's PromptSpec, ends the turn at 57001."""
    from gguf import TokenType

    from localchat.engine import load_backend
    from localchat.engine.settings import LlamaSettings
    from localchat.types import SamplingParams

    path = build_huozi_like_gguf(tmp_path / "f.gguf", TokenType.CONTROL, favour=favour)
    backend = load_backend(LlamaSettings(model_path=path, n_ctx=256))
    try:
        pieces = list(backend.stream(huozi_prompt(), SamplingParams(max_tokens=8, seed=1)))
        stats = backend.last_stats
    finally:
        backend.close()
    assert stats.finish_reason == finish
    assert stats.completion_tokens == (0 if finish == "stop" else 8)
    assert "<|endofutterance|>" not in "".join(pieces)
