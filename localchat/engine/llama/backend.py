"""The llama.cpp backend: one model, ``n_parallel`` slots decoded together.

Runs on llama.cpp's own API through ``localchat.llamacpp`` (no ``llama_cpp.Llama``).
``stream`` may be called from any number of threads: each call tokenizes its prompt
and builds its sampler in the caller's thread (so a bad request fails there, before
anything runs), then waits in arrival order for a free slot of the decode thread
(``scheduler``).  The text is assembled in the consumer's thread by the generation
loop shared with the AWQ backend (``engine.decode``): stop strings, stop token ids,
incremental UTF-8, the budget, finish reasons and stats are per stream.
"""

from __future__ import annotations

import codecs
import contextlib
import random
import time
from collections.abc import Iterator

from localchat.engine.decode import decode_tokens
from localchat.engine.interrupt import begin_load
from localchat.engine.llama import timing
from localchat.engine.llama.loader import LoadedLlama, RetryLayers, load_with_backoff
from localchat.engine.llama.scheduler import Scheduler
from localchat.engine.llama.slots import Request, TokenChannel
from localchat.engine.probe import check_first_load
from localchat.engine.settings import LlamaSettings
from localchat.engine.stops import StopStringFilter
from localchat.errors import ContextOverflow, EngineError, InvalidRequest
from localchat.llamacpp.model import LlamaModel
from localchat.llamacpp.sampler import Sampler
from localchat.planner.calibration import record_load
from localchat.types import GenerationStats, LoadReport, PromptSpec, SamplingParams, TextStream

SEED_RANGE = 2**32 - 1  # llama.cpp's seeds: 0 .. 2^32-2 (2^32-1 means "random")


class LlamaBackend:
    """One model loaded in llama.cpp; kept loaded until ``close()``."""

    def __init__(self, settings: LlamaSettings, retry: RetryLayers | None = None) -> None:
        self.load_report = LoadReport()
        self._stats = GenerationStats()
        begin_load()
        check_first_load(settings.model_path)  # a llama.cpp abort kills a child, not us
        self._loaded: LoadedLlama | None = load_with_backoff(settings, retry, self.load_report)
        self.settings = self._loaded.settings
        self._model = self._loaded.model
        self._scheduler = Scheduler(
            self._loaded.context, is_end=lambda token, stop_ids: self._is_end(token, stop_ids)
        )
        if not settings.rpc_servers:  # workers' buffers are not this machine's calibration
            record_load(settings.model_path, self.settings, self.load_report.log_text)

    @property
    def n_ctx(self) -> int:
        """The context one stream has: its prompt plus its reply."""
        return self.settings.n_ctx_per_seq

    @property
    def max_streams(self) -> int:
        return self.settings.n_parallel

    @property
    def thread_counts(self) -> tuple[int, int]:
        """(decode, batch) threads, as llama.cpp's context reports them."""
        context = self._scheduler.context
        return context.n_threads, context.n_threads_batch

    @property
    def last_stats(self) -> GenerationStats:
        return self._stats

    def count_tokens(self, text: str) -> int:
        return len(self._open_model().tokenize(text, add_special=False))

    def token_text(self, token_id: int) -> str:
        return self._open_model().piece(token_id, special=True).decode("utf-8", errors="replace")

    def _open_model(self) -> LlamaModel:
        if self._loaded is None:
            raise EngineError("the model was closed")
        return self._model

    # -- generation ------------------------------------------------------------

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        """The decoded text; closing the stream frees its slot at the next step."""
        return self.stream_choices(prompt, sampling, 1)[0]

    def stream_choices(
        self, prompt: PromptSpec, sampling: SamplingParams, n: int
    ) -> list[TextStream]:
        """``n`` continuations of one prompt (OpenAI's ``n``), decoded in ``n`` slots that
        share the prompt's KV cache after one prefill.  With a seed, choice ``i`` draws
        with ``seed + i``."""
        if not 1 <= n <= self.max_streams:
            raise InvalidRequest(
                f"{n} choices asked for, but this model runs {self.max_streams} at once",
                hint="ask for fewer, or load the model with more parallel slots",
            )
        requested_at = time.perf_counter()
        tokens = self._tokenize_prompt(prompt)
        budget = self._completion_budget(len(tokens), sampling.max_tokens)
        samplers = self._samplers(sampling, tokens, n)
        channels = [TokenChannel(self._scheduler.wake) for _ in range(n)]
        request = Request(tokens, samplers, channels, budget, frozenset(prompt.stop_token_ids))
        self._scheduler.submit(request)
        streams = [
            self._text_stream(prompt, request, channel, requested_at) for channel in channels
        ]
        self._stats = streams[0].stats
        return streams

    def _samplers(self, sampling: SamplingParams, tokens: list[int], n: int) -> list[Sampler]:
        seed = sampling.seed if sampling.seed is not None else random.randrange(SEED_RANGE)
        samplers: list[Sampler] = []
        try:
            for choice in range(n):
                choice_seed = (seed + choice) % SEED_RANGE
                samplers.append(Sampler(self._model, sampling, seed=choice_seed, history=tokens))
        except BaseException:
            for sampler in samplers:
                sampler.close()
            raise
        return samplers

    def _text_stream(
        self, prompt: PromptSpec, request: Request, channel: TokenChannel, requested_at: float
    ) -> TextStream:
        stats = GenerationStats(prompt_tokens=len(request.prompt))
        pieces = decode_tokens(
            channel.tokens(),
            Utf8Pieces(self._model, prompt.render_special_tokens),
            is_end=lambda token: self._is_end(token, request.stop_ids),
            stops=StopStringFilter(prompt.stop_strings),
            budget=request.budget,
            stats=stats,
            close=channel.cancel,
            started_at=requested_at,
            produced_at=lambda: channel.produced_at,
        )
        return TextStream(_CancelOnClose(pieces, channel), stats)

    def _tokenize_prompt(self, prompt: PromptSpec) -> list[int]:
        model = self._open_model()
        add_bos = not prompt.has_bos and model.add_bos
        tokens = model.tokenize(prompt.text, add_special=add_bos, parse_special=True)
        if not tokens:
            raise EngineError(
                "the model's vocabulary turns the prompt into no tokens at all",
                hint="the model file's tokenizer is broken; try another file",
            )
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens but the context holds {self.n_ctx}",
                hint="shorten the input or raise --ctx",
            )
        return tokens

    def _completion_budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        room = self.n_ctx - prompt_tokens
        return room if max_tokens is None or max_tokens <= 0 else min(room, max_tokens)

    def _is_end(self, token: int, stop_ids: frozenset[int]) -> bool:
        return token in stop_ids or self._model.is_end_of_generation(token)

    # -- timing (localchat bench) ----------------------------------------------

    def time_prompt(self, n_tokens: int, kv_start: int = 0) -> float:
        """Seconds to process ``n_tokens`` made-up tokens after ``kv_start`` cached ones."""
        with self._scheduler.exclusive() as context:
            return timing.time_prompt(context, self._scheduler.slots[0], n_tokens, kv_start)

    def time_decode(self, n_tokens: int, kv_start: int = 0) -> float:
        """Seconds to sample and decode ``n_tokens`` tokens one by one after ``kv_start``."""
        with self._scheduler.exclusive() as context:
            return timing.time_decode(context, self._scheduler.slots[0], n_tokens, kv_start)

    def close(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None and self._scheduler.close():
            loaded.close()  # else the decode thread is stuck in llama.cpp: leave it be


class Utf8Pieces:
    """Token pieces as text, holding back a character split across tokens."""

    def __init__(self, model: LlamaModel, special: bool) -> None:
        self._model = model
        self._special = special
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        return self._decoder.decode(self._model.piece(token, special=self._special))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class _CancelOnClose:
    """A stream's pieces; closing it (even before the first piece, or by dropping it)
    cancels its channel, so its slot is freed."""

    def __init__(self, pieces: Iterator[str], channel: TokenChannel) -> None:
        self._pieces = pieces
        self._channel = channel

    def __iter__(self) -> _CancelOnClose:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._channel.cancel()  # first: safe from any thread
        close = getattr(self._pieces, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # closed from another thread mid-read
                close()

    def __del__(self) -> None:
        self._channel.cancel()
