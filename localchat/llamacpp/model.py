"""A GGUF loaded by llama.cpp (``llama_model``) and its vocabulary, typed.

The model parameters are built here from plain values, so nothing patches
llama-cpp-python: GPU layers, the split over devices, tensors kept in RAM
(``tensor_buft_overrides``: MoE experts), the abortable-load progress callback, mmap.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

from localchat.errors import CorruptModelFile, EngineError
from localchat.llamacpp._bindings import C
from localchat.llamacpp.native import NativeLibrary

MAX_PIECE_BYTES = 1 << 16  # one token's text; a vocabulary asking for more is broken
_PIECE_BUFFER_BYTES = 64


class LoadFailed(EngineError):
    """llama.cpp refused to load the model or create its context (its log says why)."""


class _TensorBuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override``: a tensor-name regex, a buffer type."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


@dataclass(frozen=True)
class ModelParams:
    """How to load a model (``llama_model_params``)."""

    n_gpu_layers: int = 0  # llama.cpp's count: n_layer + 1 offloads the output layer too
    tensor_split: tuple[float, ...] = ()  # a share per device, in llama.cpp's device order
    cpu_tensor_patterns: tuple[str, ...] = ()  # regexes of tensors kept in RAM (CPU buffer)
    use_mmap: bool = True
    repack: bool = True  # llama.cpp's extra buffer types (CPU weight repacking)
    abortable: bool = True  # stop at the next tensor once the library's loads are cancelled


class LlamaModel:
    """A loaded model; ``close()`` frees it (after every context made from it)."""

    def __init__(self, native: NativeLibrary, path: Path, params: ModelParams) -> None:
        self._keep_alive: list[object] = []  # arrays llama.cpp keeps pointers into
        c_params = self._c_params(native, params)
        handle = C.llama_model_load_from_file(str(path).encode(), c_params)
        if not handle:
            raise LoadFailed(f"llama.cpp could not load {path.name}")
        self.handle = handle
        self.vocab = C.llama_model_get_vocab(handle)
        self.n_vocab = int(C.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(C.llama_vocab_get_add_bos(self.vocab))
        self.n_ctx_train = int(C.llama_model_n_ctx_train(handle))
        # Per token id, asked once: every ctypes call gives up the GIL, and on a busy
        # server taking it back costs the decode loop more than the call itself.
        self._is_eog: dict[int, bool] = {}
        self._pieces: dict[tuple[int, bool], bytes] = {}

    def _c_params(self, native: NativeLibrary, params: ModelParams) -> C.llama_model_params:
        c_params: C.llama_model_params = C.llama_model_default_params()
        c_params.n_gpu_layers = params.n_gpu_layers
        c_params.load_mode = C.LLAMA_LOAD_MODE_MMAP if params.use_mmap else C.LLAMA_LOAD_MODE_NONE
        c_params.use_extra_bufts = params.repack
        if params.tensor_split:
            split = (ctypes.c_float * native.max_devices())(*params.tensor_split)
            self._keep_alive.append(split)
            c_params.tensor_split = split
        if params.cpu_tensor_patterns:
            overrides = _buffer_overrides(params.cpu_tensor_patterns, native.cpu_buffer_type())
            self._keep_alive.append(overrides)
            # a void * field that llama-cpp-python annotates as an array (it never sets it)
            c_params.tensor_buft_overrides = ctypes.addressof(overrides)  # type: ignore[assignment]
        if params.abortable:
            c_params.progress_callback = native.progress_callback
        return c_params

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``CorruptModelFile`` when the vocabulary answers with
        ids outside itself or an absurd count (a broken tokenizer in the file)."""
        data = text.encode("utf-8")
        flags = (add_special, parse_special)
        ids, needed = self._tokenize_into(data, len(data) + 8, *flags)
        if needed > 4 * len(data) + 64:
            raise self._broken(f"asks for {needed} tokens for {len(data)} bytes of text")
        if needed:
            ids, needed = self._tokenize_into(data, needed, *flags)
        if needed:
            raise self._broken("fails to tokenize text")
        if any(not 0 <= token < self.n_vocab for token in ids):
            raise self._broken("turns text into token ids outside its vocabulary")
        return ids

    def _tokenize_into(
        self, data: bytes, capacity: int, add_special: bool, parse_special: bool
    ) -> tuple[list[int], int]:
        """(the tokens, 0), or ([], how many are needed) when ``capacity`` is too small."""
        tokens = (C.llama_token * capacity)()
        count = C.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_special, parse_special
        )
        return (tokens[:count], 0) if count >= 0 else ([], -count)

    def piece(self, token: int, *, special: bool) -> bytes:
        """The token's bytes (llama-cpp-python's helper truncates pieces over 32 bytes)."""
        key = (token, special)
        found = self._pieces.get(key)
        if found is None:
            found = self._pieces[key] = self._read_piece(token, special)
        return found

    def _read_piece(self, token: int, special: bool) -> bytes:
        buffer = ctypes.create_string_buffer(_PIECE_BUFFER_BYTES)
        count = C.llama_token_to_piece(self.vocab, token, buffer, _PIECE_BUFFER_BYTES, 0, special)
        if count >= 0:
            return buffer.raw[:count]
        if -count > MAX_PIECE_BYTES:
            raise self._broken(f"has a token of {-count} bytes")
        buffer = ctypes.create_string_buffer(-count)
        count = C.llama_token_to_piece(self.vocab, token, buffer, -count, 0, special)
        return buffer.raw[: max(count, 0)]

    def is_end_of_generation(self, token: int) -> bool:
        found = self._is_eog.get(token)
        if found is None:
            found = self._is_eog[token] = bool(C.llama_vocab_is_eog(self.vocab, token))
        return found

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle:
            C.llama_model_free(handle)
        self._keep_alive.clear()

    def _broken(self, what: str) -> CorruptModelFile:
        return CorruptModelFile(
            f"the model's tokenizer {what}",
            hint="the file's tokenizer metadata is broken; try another file of the model",
        )


def _buffer_overrides(
    patterns: tuple[str, ...], buffer_type: int
) -> ctypes.Array[_TensorBuftOverride]:
    """A NULL-terminated array of (pattern, buffer type) pairs."""
    overrides = (_TensorBuftOverride * (len(patterns) + 1))()
    for entry, pattern in zip(overrides, patterns, strict=False):
        entry.pattern, entry.buft = pattern.encode(), buffer_type
    return overrides
