"""Vocabularies llama.cpp aborts or loops forever on are refused up front (issue 21).

The rules come from llama.cpp's ``src/llama-vocab.cpp``; ``test_gguf_layout_sweep`` and
``test_gguf_verdicts`` check the whole path against the real library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localchat.errors import CorruptModelFile
from localchat.gguf import read_gguf_header
from localchat.gguf.vocab import unescape_rwkv
from tests.fixtures.gguf_files import ModelSpec, tiny_spec, write_gguf

# An RWKV "world" vocabulary in miniature: every byte on its own, then longer tokens,
# written as llama.cpp's converter writes them (escaped byte strings).
RWKV_BYTES = [f"\\x{b:02x}" for b in range(256)]
RWKV_TOKENS = [*RWKV_BYTES, "hello", "\\nhi", "\\\\n"]


def vocab_file(tmp_path: Path, arch: str, model: str, tokens: list[str], **keys: Any) -> Path:
    """A metadata-only GGUF (no block_count: no tensors to check) with a vocabulary."""
    metadata = {"tokenizer.ggml.model": model, "tokenizer.ggml.tokens": tokens}
    metadata.update({f"tokenizer.ggml.{key}": value for key, value in keys.items()})
    spec = ModelSpec(arch=arch, name="vocab", metadata=metadata, tensors=[])
    return write_gguf(tmp_path / f"{arch}-{model}.gguf", spec)[0]


def refusal(path: Path) -> str:
    with pytest.raises(CorruptModelFile) as refused:
        read_gguf_header(path)
    return refused.value.message


def test_unescape_follows_llama_cpp() -> None:
    assert unescape_rwkv(b"hello") == b"hello"
    assert unescape_rwkv(b"\\n\\t\\r") == b"\n\t\r"
    assert unescape_rwkv(b"\\x0a\\xff") == b"\n\xff"
    assert unescape_rwkv(b"\\\\") == b"\\"
    assert unescape_rwkv(b"\\q") == b"q"  # any other escaped character stands for itself
    assert unescape_rwkv(b"\\xZZ") == bytes([((ord("Z") - 48) * 16 + ord("Z") - 48) & 0xFF])


def test_a_byte_complete_rwkv_vocabulary_in_an_rwkv_model_passes(tmp_path: Path) -> None:
    read_gguf_header(vocab_file(tmp_path, "rwkv6", "rwkv", RWKV_TOKENS))


def test_an_rwkv_vocabulary_in_a_llama_model_is_refused(tmp_path: Path) -> None:
    """The campaign's case: llama.cpp grew to 4.8 GB and died of std::bad_alloc."""
    path = vocab_file(tmp_path, "llama", "rwkv", RWKV_TOKENS)
    assert "an RWKV vocabulary in a 'llama' model" in refusal(path)


def test_an_rwkv_vocabulary_without_a_starting_byte_is_refused(tmp_path: Path) -> None:
    """No one-byte "\\n" token, but "\\nhi" starts with it: tokenizing a newline never ends."""
    tokens = [t for t in RWKV_TOKENS if t != "\\x0a"]
    assert "no one-byte token b'\\n'" in refusal(vocab_file(tmp_path, "rwkv7", "rwkv", tokens))


def test_special_tokens_the_tokenizer_asserts(tmp_path: Path) -> None:
    """SPM adds BOS by default: a vocabulary without one aborts llama.cpp's tokenize."""
    tokens = ["<unk>"]  # the default BOS id 1 is outside the vocabulary
    assert "adds a BOS token" in refusal(vocab_file(tmp_path, "llama", "llama", tokens))
    read_gguf_header(vocab_file(tmp_path, "x1", "llama", tokens, add_bos_token=False))
    read_gguf_header(vocab_file(tmp_path, "x2", "llama", ["<unk>", "<s>"]))  # default id 1


def test_an_eos_added_but_out_of_range(tmp_path: Path) -> None:
    tokens = ["a", "b", "c"]  # BPE's default ids (11) are outside; the key's 7 too
    path = vocab_file(tmp_path, "llama", "gpt2", tokens, add_eos_token=True, eos_token_id=7)
    assert "adds a EOS token" in refusal(path)
    read_gguf_header(vocab_file(tmp_path, "x", "gpt2", tokens, add_eos_token=True, eos_token_id=2))


def test_bert_always_needs_cls_and_sep(tmp_path: Path) -> None:
    tokens = [f"t{i}" for i in range(110)]  # default [CLS] 101 inside, [SEP] 102 inside
    read_gguf_header(vocab_file(tmp_path, "bert", "bert", tokens))
    assert "SEP" in refusal(vocab_file(tmp_path, "bert", "bert", tokens[:102]))


def test_arrays_shorter_than_the_vocabulary(tmp_path: Path) -> None:
    spec = tiny_spec()
    spec.metadata["tokenizer.ggml.scores"] = [0.0] * 10
    path = write_gguf(tmp_path / "scores.gguf", spec)[0]
    assert "tokenizer.ggml.scores has 10 entries for 1000 tokens" in refusal(path)


def test_an_unknown_tokenizer_model(tmp_path: Path) -> None:
    path = vocab_file(tmp_path, "llama", "sentencepiece", ["a"])
    assert "'sentencepiece' is not supported" in refusal(path)
