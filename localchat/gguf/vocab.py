"""What the vocabulary must satisfy so that llama.cpp neither aborts nor hangs on it.

From ``src/llama-vocab.cpp``: ``llama_vocab::impl::load`` (the tokenizer models it
knows, the arrays it reads, the special tokens and their defaults) and ``tokenize``
(which ``GGML_ASSERT``s a BOS/EOS/SEP token it was told to add).  Missing arrays that
make llama.cpp throw a clean error (no token list, no BPE merges) are left to it.
"""

from __future__ import annotations

from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader, quote

# tokenizer.ggml.model -> the vocabulary type llama_vocab::impl::load gives it.
TOKENIZER_TYPES = {
    "no_vocab": "none",
    "none": "none",
    "llama": "spm",
    "bert": "wpm",
    "gpt2": "bpe",
    "hybriddna": "bpe",
    "whitespace": "bpe",
    "gemma4": "bpe",
    "t5": "ugm",
    "rwkv": "rwkv",
    "plamo2": "plamo2",
    "test": "test",
}
# The RWKV vocabulary (escaped byte strings) is converted only for RWKV models.
RWKV_ARCHS = frozenset({"rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# Default (bos, eos, sep) ids and whether BOS/EOS are added, per vocabulary type.
_DEFAULT_IDS: dict[str, tuple[int | None, int | None, int | None]] = {
    "spm": (1, 2, None),
    "wpm": (101, None, 102),
    "bpe": (11, 11, None),
    "ugm": (None, 1, None),
}
_DEFAULT_ADDS = {
    "spm": (True, False),
    "wpm": (True, False),
    "bpe": (False, False),
    "ugm": (False, True),
}
_ID_KEYS = ("bos_token_id", "eos_token_id", "seperator_token_id")  # llama.cpp's spelling
_HINT = "the file is corrupt or was made for another program; download it again"


def check_vocab(header: GgufHeader, arch: str) -> None:
    """Refuse a vocabulary llama.cpp would abort or loop forever on."""
    model = header.metadata.get("tokenizer.ggml.model")
    if model is None:
        return  # llama.cpp refuses the file cleanly ("key not found")
    vocab_type = TOKENIZER_TYPES.get(model) if isinstance(model, str) else None
    if vocab_type is None:
        raise _corrupt(header, f"tokenizer.ggml.model {_shown(model)} is not supported")
    if vocab_type == "rwkv" and arch not in RWKV_ARCHS:
        raise _corrupt(header, f"an RWKV vocabulary in a {quote(arch)} model")
    n_tokens = header.array_lengths.get("tokenizer.ggml.tokens")
    if n_tokens is None or vocab_type == "none":
        return
    _check_array_lengths(header, n_tokens)
    _check_special_tokens(header, vocab_type, n_tokens)
    texts = token_texts(header)
    if texts:
        _check_texts(header, texts)
        if vocab_type == "rwkv":
            _check_rwkv_bytes(header, texts)


def token_texts(header: GgufHeader) -> list[bytes]:
    """Each token's text as llama.cpp keeps it (empty ones renamed), or [] when the header
    did not keep them (a remote header's vocabulary is not read)."""
    if header.tokens is None:
        return []
    blob, offsets = header.tokens.blob, header.tokens.offsets
    ends = [*offsets[1:], len(blob)]  # the texts lie back to back, each after its length
    return [
        blob[start + 8 : end] or f"[EMPTY_{token_id}]".encode()
        for token_id, (start, end) in enumerate(zip(offsets, ends, strict=True))
    ]


def _check_array_lengths(header: GgufHeader, n_tokens: int) -> None:
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        length = header.array_lengths.get(key)
        if length is not None and length < n_tokens:
            raise _corrupt(header, f"{key} has {length} entries for {n_tokens} tokens")


def _check_special_tokens(header: GgufHeader, vocab_type: str, n_tokens: int) -> None:
    """llama.cpp asserts the BOS/EOS (and for WPM the SEP) token it adds to a prompt."""
    if vocab_type not in _DEFAULT_IDS:
        return
    bos, eos, sep = _special_ids(header.metadata, vocab_type, n_tokens)
    add_bos, add_eos = _DEFAULT_ADDS[vocab_type]
    add_bos = _flag(header.metadata, "tokenizer.ggml.add_bos_token", add_bos)
    add_eos = _flag(header.metadata, "tokenizer.ggml.add_eos_token", add_eos)
    is_wpm = vocab_type == "wpm"  # BERT: [CLS] and [SEP] around every prompt, whatever the flags
    for needed, token_id, what in (
        (add_bos or is_wpm, bos, "BOS"),
        (add_eos and not is_wpm, eos, "EOS"),
        (is_wpm, sep, "SEP"),
    ):
        if needed and token_id is None:
            raise _corrupt(
                header, f"the vocabulary adds a {what} token it does not have (llama.cpp aborts)"
            )


def _special_ids(meta: dict[str, Any], vocab_type: str, n_tokens: int) -> list[int | None]:
    """(bos, eos, sep) as llama.cpp resolves them: a default outside the vocabulary is
    dropped, a key inside it wins, a key outside it keeps the default."""
    ids = []
    for default, key in zip(_DEFAULT_IDS[vocab_type], _ID_KEYS, strict=True):
        token_id = default if default is not None and default < n_tokens else None
        value = meta.get(f"tokenizer.ggml.{key}")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_tokens:
            token_id = value
        ids.append(token_id)
    return ids


def _flag(meta: dict[str, Any], key: str, default: bool) -> bool:
    value = meta.get(key)
    return value if isinstance(value, bool) else default


def _check_texts(header: GgufHeader, texts: list[bytes]) -> None:
    if len(set(texts)) != len(texts):  # llama.cpp asserts that no two texts are equal
        seen: set[bytes] = set()
        for token_id, text in enumerate(texts):
            if text in seen:
                raise _corrupt(header, f"token {token_id} repeats an earlier token's text")
            seen.add(text)
    try:  # NUL ends any multi-byte sequence, so the join is valid only if every text is
        b"\0".join(texts).decode("utf-8")
    except UnicodeDecodeError:
        raise _corrupt(header, "a token's text is not valid UTF-8") from None


def _check_rwkv_bytes(header: GgufHeader, texts: list[bytes]) -> None:
    """llama.cpp's RWKV tokenizer walks a trie of the unescaped tokens and restarts from
    the beginning of the text when no token ends on the path it took: it never stops
    (and fills memory) unless every byte that starts a token is a token on its own."""
    unescaped = [unescape_rwkv(text) for text in texts]
    single = {token[0] for token in unescaped if len(token) == 1}
    for token in unescaped:
        if token and token[0] not in single:
            raise _corrupt(
                header,
                f"the RWKV vocabulary has no one-byte token {bytes(token[:1])!r}, "
                "on which llama.cpp's tokenizer loops forever",
            )


def unescape_rwkv(escaped: bytes) -> bytes:
    """``llama_unescape_rwkv_token``: ``\\t \\n \\r``, ``\\xNN`` and ``\\c`` for c."""
    out = bytearray()
    escaping, hex_left, hex_acc = False, 0, 0
    for byte in escaped:
        if hex_left:
            char = byte - 256 if byte >= 128 else byte  # a C char is signed
            value = (char - ord("a") + 10 if char >= ord("a") else char - ord("0")) & 0xFF
            hex_acc, hex_left = ((hex_acc << 4) + value) & 0xFF, hex_left - 1
            if not hex_left:
                out.append(hex_acc)
                hex_acc = 0
        elif escaping:
            escaping = False
            if byte == ord("x"):
                hex_left = 2
            else:
                out.append({ord("t"): 9, ord("n"): 10, ord("r"): 13}.get(byte, byte))
        elif byte == ord("\\"):
            escaping = True
        else:
            out.append(byte)
    return bytes(out)


def _shown(value: object) -> str:
    return quote(value) if isinstance(value, str) else quote(repr(value))


def _corrupt(header: GgufHeader, reason: str) -> CorruptModelFile:
    return CorruptModelFile(f"{header.name}: {reason}", hint=_HINT)
