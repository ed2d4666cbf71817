"""The llama-cpp-python backend.

The only module (with ``engine/logs.py``) that imports ``llama_cpp``, and only
when a model is loaded.  Generation runs on ``Llama.generate`` token by token
(the loop in ``engine.decode``) so that stop strings, stop token ids, incremental
UTF-8 and timing are ours.
"""

from __future__ import annotations

import codecs
import ctypes
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from localchat.engine.decode import decode_tokens
from localchat.engine.interrupt import abortable_load, begin_load, run_interruptibly
from localchat.engine.llama_overrides import expert_patterns, tensor_buffer_overrides
from localchat.engine.logs import ROUTER
from localchat.engine.probe import check_first_load
from localchat.engine.settings import LlamaSettings
from localchat.engine.stops import StopStringFilter
from localchat.errors import BackendUnavailable, EngineError
from localchat.planner.calibration import record_load
from localchat.types import (
    GenerationStats,
    LoadReport,
    PromptSpec,
    SamplingParams,
    TextStream,
)

MAX_LOAD_RETRIES = 3
RetryLayers = Callable[[int], int | None]  # attempt (1..3) -> GPU layers to retry with, or None
_OOM_MARKERS = ("failed to allocate", "out of memory", "cudaMalloc failed", "unable to allocate")


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailable(
            "llama-cpp-python is not installed",
            hint='install it: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python',
        ) from exc
    except OSError as exc:  # the shared library failed to load
        raise BackendUnavailable(
            f"llama-cpp-python is installed but its library failed to load ({exc})",
            hint="reinstall it; see `localchat doctor`",
        ) from exc
    ROUTER.install()
    return llama_cpp


def ggml_type(name: str) -> int:
    llama_cpp = import_llama_cpp()
    attr = f"GGML_TYPE_{name.upper()}"
    if not hasattr(llama_cpp, attr):
        raise EngineError(f"unknown KV cache type {name!r}", hint="use f16, q8_0 or q4_0")
    return int(getattr(llama_cpp, attr))


class LlamaBackend:
    """One model loaded in llama.cpp; kept loaded until ``close()``."""

    def __init__(self, settings: LlamaSettings, retry: RetryLayers | None = None) -> None:
        self.settings = settings
        self._retry = retry
        self.load_report = LoadReport()
        self._stats = GenerationStats()
        begin_load()
        check_first_load(settings.model_path)  # a llama.cpp abort kills a child, not us
        self._llm = self._load_with_backoff(settings)
        self._lib = import_llama_cpp()
        self._vocab = self._llm._model.vocab
        self._piece_buffer = ctypes.create_string_buffer(256)
        if not settings.rpc_servers:  # workers' buffers are not this machine's calibration
            record_load(settings.model_path, self.settings, self.load_report.log_text)

    @property
    def n_ctx(self) -> int:
        return self.settings.n_ctx

    # -- loading ---------------------------------------------------------

    def _load_with_backoff(self, settings: LlamaSettings) -> Any:
        """Load; when llama.cpp runs out of memory, offload fewer layers and retry (bounded)."""
        started = time.perf_counter()
        attempt_settings = settings
        for attempt in range(1, MAX_LOAD_RETRIES + 2):
            with ROUTER.capture() as log_lines:
                try:
                    llm = self._construct(attempt_settings)
                except ValueError as exc:
                    log_text = "".join(log_lines)
                    fewer = self._fewer_layers(attempt_settings, attempt, log_text)
                    if fewer is None:
                        raise _load_error(settings, exc, log_text) from exc
                    self.load_report.retries.append(
                        f"load failed for memory with {attempt_settings.n_gpu_layers} GPU layers; "
                        f"retrying with {fewer.n_gpu_layers}"
                    )
                    attempt_settings = fewer
                    continue
            self.settings = attempt_settings
            self.load_report.load_s = time.perf_counter() - started
            self.load_report.log_text = "".join(log_lines)
            return llm
        raise EngineError(
            f"could not load {settings.model_path.name} after {MAX_LOAD_RETRIES} retries",
            hint="try a smaller quant or --ctx",
        )

    def _fewer_layers(
        self, settings: LlamaSettings, attempt: int, log_text: str
    ) -> LlamaSettings | None:
        """The settings to retry with after an out-of-memory load, or None if not memory."""
        lowered = log_text.lower()
        if settings.n_gpu_layers <= 0 or not any(m in lowered for m in _OOM_MARKERS):
            return None
        layers = self._retry(attempt) if self._retry is not None else None
        return None if layers is None else replace(settings, n_gpu_layers=layers)

    def _construct(self, settings: LlamaSettings) -> Any:
        llama_cpp = import_llama_cpp()
        kwargs: dict[str, Any] = {
            "model_path": str(settings.model_path),
            "n_ctx": settings.n_ctx,
            "n_gpu_layers": settings.n_gpu_layers,
            "n_batch": settings.n_batch,
            "n_ubatch": settings.n_ubatch,
            "flash_attn": settings.flash_attn,
            "type_k": ggml_type(settings.type_k),
            "type_v": ggml_type(settings.type_v),
            "use_mmap": settings.use_mmap,
            "verbose": True,  # verbose=False dup2()s fds 1/2 to /dev/null during load
        }
        if settings.n_threads:
            kwargs["n_threads"] = settings.n_threads
        if settings.n_threads_batch:
            kwargs["n_threads_batch"] = settings.n_threads_batch
        split = _device_split(settings)  # registers RPC workers first
        if split:
            kwargs["tensor_split"] = split
        patterns = expert_patterns(settings.n_cpu_moe)
        with (
            ROUTER.python_stderr(),
            tensor_buffer_overrides(llama_cpp, patterns) as overrides,
            abortable_load(llama_cpp),
        ):
            llm = run_interruptibly(lambda: llama_cpp.Llama(**kwargs))
        self._overrides = overrides  # llama.cpp keeps pointers into it
        return llm

    # -- timing (localchat bench) ----------------------------------------

    def time_prompt(self, n_tokens: int, kv_start: int = 0) -> float:
        """Seconds to process ``n_tokens`` made-up tokens in batches after the first
        ``kv_start`` cached tokens (llama-bench's pp test; the cache is cut there first)."""
        llm = self._llm
        tokens = _made_up_tokens(n_tokens, llm.n_vocab(), seed=kv_start)
        llm.n_tokens = min(kv_start, llm.n_tokens)
        with ROUTER.python_stderr():
            started = time.perf_counter()
            llm.eval(tokens)
            return time.perf_counter() - started

    def time_decode(self, n_tokens: int, kv_start: int = 0) -> float:
        """Seconds to sample and decode ``n_tokens`` tokens one by one after ``kv_start``
        cached tokens, as ``stream`` does (llama-bench's tg test plus sampling)."""
        llm = self._llm
        llm.n_tokens = min(kv_start, llm.n_tokens)
        first = _made_up_tokens(1, llm.n_vocab(), seed=kv_start)
        with ROUTER.python_stderr():
            generator = llm.generate(first, top_k=40, top_p=0.95, min_p=0.05, temp=0.7, reset=False)
        try:
            next(iter(_quietly(generator)))  # the first token pays for the prompt token
            started = time.perf_counter()
            for _, _token in zip(range(n_tokens), _quietly(generator), strict=False):
                pass
            return time.perf_counter() - started
        finally:
            generator.close()

    # -- generation ------------------------------------------------------

    @property
    def last_stats(self) -> GenerationStats:
        return self._stats

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def token_text(self, token_id: int) -> str:
        return self._piece(token_id, True).decode("utf-8", errors="replace")

    @property
    def max_streams(self) -> int:
        return 1

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        """The decoded text; closing the stream stops decoding at the next token."""
        stats = GenerationStats()
        self._stats = stats
        return TextStream(self._generate(prompt, sampling, stats), stats)

    def _generate(
        self, prompt: PromptSpec, sampling: SamplingParams, stats: GenerationStats
    ) -> Iterator[str]:
        llm = self._llm
        tokens = self._tokenize_prompt(prompt)
        budget = self._completion_budget(len(tokens), sampling.max_tokens)
        llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
        stats.prompt_tokens = len(tokens)
        stop_ids = set(prompt.stop_token_ids)
        with ROUTER.python_stderr():
            generator = llm.generate(
                tokens,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                temp=sampling.temperature,
                repeat_penalty=sampling.repeat_penalty,
                reset=True,
            )
        yield from decode_tokens(
            _quietly(generator),
            _Utf8Pieces(self._piece, prompt.render_special_tokens),
            is_end=lambda token: self._is_end(token, stop_ids),
            stops=StopStringFilter(prompt.stop_strings),
            budget=budget,
            stats=stats,
            close=generator.close,
        )

    def _tokenize_prompt(self, prompt: PromptSpec) -> list[int]:
        llm = self._llm
        add_bos = not prompt.has_bos and llm._model.add_bos_token()
        tokens = llm.tokenize(prompt.text.encode("utf-8"), add_bos=add_bos, special=True)
        if not tokens:  # llama-cpp-python would fail an assert on an empty prompt
            raise EngineError(
                "the model's vocabulary turns the prompt into no tokens at all",
                hint="the model file's tokenizer is broken; try another file",
            )
        if len(tokens) >= llm.n_ctx():
            raise EngineError(
                f"the prompt is {len(tokens)} tokens but the context holds {llm.n_ctx()}",
                hint="shorten the input or raise --ctx",
            )
        return tokens

    def _completion_budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        room = self._llm.n_ctx() - prompt_tokens
        return room if max_tokens is None or max_tokens <= 0 else min(room, max_tokens)

    def _is_end(self, token: int, stop_ids: set[int]) -> bool:
        return token in stop_ids or bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def _piece(self, token: int, special: bool) -> bytes:
        """The token's bytes (llama-cpp-python's own helper truncates pieces over 32 bytes)."""
        to_piece = self._lib.llama_token_to_piece
        n = to_piece(self._vocab, token, self._piece_buffer, 256, 0, special)
        if n < 0:
            bigger = ctypes.create_string_buffer(-n)
            n = to_piece(self._vocab, token, bigger, -n, 0, special)
            return bigger.raw[:n]
        return self._piece_buffer.raw[:n]

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def _made_up_tokens(n_tokens: int, n_vocab: int, *, seed: int) -> list[int]:
    """Random ordinary token ids, as llama-bench feeds (the text does not matter for speed)."""
    rng = random.Random(seed)
    first = min(1000, n_vocab // 2)  # past the special tokens small vocabularies start with
    return [rng.randrange(first, n_vocab) for _ in range(n_tokens)]


def _device_split(settings: LlamaSettings) -> list[float] | None:
    """``tensor_split`` over llama.cpp's devices, after registering the RPC workers."""
    from localchat.engine import rpc

    if not settings.rpc_servers and not rpc.registered_device_count():
        return list(settings.tensor_split) if settings.tensor_split else None
    rpc.register_workers(settings.rpc_servers)
    return rpc.device_split(settings.rpc_servers, settings.tensor_split)


class _Utf8Pieces:
    """llama.cpp's token pieces as text, holding back a character split across tokens."""

    def __init__(self, piece: Callable[[int, bool], bytes], special: bool) -> None:
        self._piece = piece
        self._special = special
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        return self._decoder.decode(self._piece(token, self._special))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


def _quietly(generator: Iterator[int]) -> Iterator[int]:
    """Advance llama-cpp-python's generator with its Python-side prints sent to the log.

    llama-cpp-python reports a failed decode as ``RuntimeError("llama_decode returned
    N")`` (and a few states as ValueError): the engine's error, not a bug in localchat.
    """
    while True:
        with ROUTER.python_stderr():
            try:
                token = next(generator)
            except StopIteration:
                return
            except (RuntimeError, ValueError) as exc:
                raise EngineError(
                    f"llama.cpp failed while generating: {exc}",
                    hint="see llama.log in localchat's log folder; a smaller --ctx may help",
                ) from exc
        yield token


def _load_error(settings: LlamaSettings, exc: ValueError, log_text: str) -> EngineError:
    name = settings.model_path.name
    last_error = next(
        (line.strip() for line in reversed(log_text.splitlines()) if "error" in line.lower()), ""
    )
    detail = f": {last_error}" if last_error else ""
    return EngineError(
        f"llama.cpp could not load {name}{detail}",
        hint="see the log with `localchat doctor`, or try a smaller --ctx",
    )
