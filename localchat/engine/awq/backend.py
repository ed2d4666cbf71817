"""The AWQ backend: a GPTQModel-quantized transformers model behind ``engine.base.Backend``.

Generation is our own token loop over the model's forward pass with a KV cache, fed
to the decode loop the llama.cpp backend uses (``engine.decode``), so stop ids, stop
strings, incremental UTF-8, timing and cancel-at-the-next-token behave exactly as there.
A grammar (structured output, tool calls) is enforced on the logits by llguidance
(``constrained``), the same GBNF llama.cpp's sampler takes.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from localchat.engine.awq.constrained import GrammarConstraint, GrammarTokenizer
from localchat.engine.awq.loader import LoadedAwq, load_awq
from localchat.engine.awq.sampling import pick_token
from localchat.engine.decode import decode_tokens
from localchat.engine.settings import AwqSettings
from localchat.engine.stops import StopStringFilter
from localchat.errors import ContextOverflow, EngineError
from localchat.types import (
    GenerationStats,
    LoadReport,
    PromptSpec,
    SamplingParams,
    TextStream,
)

PREFILL_CHUNK_TOKENS = 512  # bounds activation memory for long prompts


class AwqBackend:
    """One AWQ checkpoint loaded with GPTQModel; kept loaded until ``close()``."""

    def __init__(self, settings: AwqSettings, retry: Callable[[int], int | None] | None = None):
        del retry  # the whole model sits on one device: there are no layers to move back
        self.settings = settings
        self.load_report = LoadReport()
        self._stats = GenerationStats()
        started = time.perf_counter()
        log = io.StringIO()
        try:
            self._loaded: LoadedAwq | None = load_awq(settings, log)
        finally:
            self.load_report.log_text = log.getvalue()
        self.load_report.load_s = time.perf_counter() - started
        if self._loaded.renamed_keys:
            renamed = self._loaded.renamed_keys
            self.load_report.log_text += f"\nmapped {renamed} AutoAWQ legacy Mixtral keys\n"
        self._end_ids = _end_token_ids(self._loaded)
        self._grammar_tokenizer: GrammarTokenizer | None = None  # built with the first grammar

    @property
    def n_ctx(self) -> int:
        return self.settings.n_ctx

    @property
    def last_stats(self) -> GenerationStats:
        return self._stats

    def _model(self) -> LoadedAwq:
        if self._loaded is None:
            raise EngineError("the model was closed")
        return self._loaded

    def count_tokens(self, text: str) -> int:
        return len(self._model().tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_text(self, token_id: int) -> str:
        return str(self._model().tokenizer.decode([token_id], skip_special_tokens=False))

    @property
    def max_streams(self) -> int:
        return 1  # one torch KV cache, one sequence at a time

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        """The decoded text; closing the stream stops decoding at the next token."""
        stats = GenerationStats()
        self._stats = stats
        return TextStream(self._generate(prompt, sampling, stats), stats)

    def _generate(
        self, prompt: PromptSpec, sampling: SamplingParams, stats: GenerationStats
    ) -> Iterator[str]:
        loaded = self._model()
        torch = loaded.torch
        tokens = self._tokenize_prompt(prompt)
        budget = self._completion_budget(len(tokens), sampling.max_tokens)
        seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
        generator = torch.Generator(device=loaded.device).manual_seed(seed)
        stats.prompt_tokens = len(tokens)
        stop_ids = set(prompt.stop_token_ids) | self._end_ids
        history = list(tokens)
        constraint = self._constraint(sampling, stop_ids)
        token_ids = self._tokens(tokens, sampling, history, generator, constraint)
        yield from decode_tokens(
            token_ids,
            IncrementalDetokenizer(loaded.tokenizer, prompt.render_special_tokens),
            is_end=lambda token: token in stop_ids,
            stops=StopStringFilter(prompt.stop_strings),
            budget=budget,
            stats=stats,
            close=token_ids.close,
        )

    def _constraint(self, sampling: SamplingParams, end_ids: set[int]) -> GrammarConstraint | None:
        if not sampling.grammar:
            return None
        loaded = self._model()
        if self._grammar_tokenizer is None:
            self._grammar_tokenizer = GrammarTokenizer(loaded.tokenizer, end_ids)
        tokenizer = loaded.tokenizer
        return self._grammar_tokenizer.constraint(
            sampling, lambda: IncrementalDetokenizer(tokenizer, render_special_tokens=True)
        )

    def _tokens(
        self,
        prompt_ids: list[int],
        sampling: SamplingParams,
        history: list[int],
        generator: Any,
        constraint: GrammarConstraint | None = None,
    ) -> Generator[int, None, None]:
        """Prefill in chunks, then one forward pass per token with the KV cache; a grammar
        masks each token's logits before the draw."""
        loaded = self._model()
        torch, model, device = loaded.torch, loaded.model, loaded.device
        cache_arg = loaded.cache_kwarg
        past = None
        with torch.inference_mode():
            for start in range(0, len(prompt_ids), PREFILL_CHUNK_TOKENS):
                chunk_ids = prompt_ids[start : start + PREFILL_CHUNK_TOKENS]
                chunk = torch.tensor([chunk_ids], device=device)
                out = model(input_ids=chunk, use_cache=True, logits_to_keep=1, **{cache_arg: past})
                past = out.past_key_values
            while True:
                logits = out.logits[0, -1]
                if constraint is not None:
                    logits = constraint.mask(torch, logits.float())
                token = pick_token(torch, logits, sampling, history, generator)
                if constraint is not None:
                    constraint.accept(token)
                history.append(token)
                yield token
                step = torch.tensor([[token]], device=device)
                out = model(input_ids=step, use_cache=True, logits_to_keep=1, **{cache_arg: past})
                past = out.past_key_values

    def _tokenize_prompt(self, prompt: PromptSpec) -> list[int]:
        tokenizer = self._model().tokenizer
        ids: list[int] = list(tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
        bos = tokenizer.bos_token_id
        if not prompt.has_bos and bos is not None and _adds_bos(tokenizer):
            ids = [bos, *ids]
        if not ids:
            raise EngineError("the prompt is empty")
        if len(ids) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(ids)} tokens but the context holds {self.n_ctx}",
                hint="shorten the input or raise --ctx",
            )
        return ids

    def _completion_budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        room = self.n_ctx - prompt_tokens
        return room if max_tokens is None or max_tokens <= 0 else min(room, max_tokens)

    def close(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded.device.startswith("cuda"):
            del loaded
            import torch

            torch.cuda.empty_cache()


class IncrementalDetokenizer:
    """Token ids in, text out as soon as it is whole (no half UTF-8 characters).

    Decodes a short window (from the last emitted boundary) rather than the whole
    reply, so each token costs the same however long the answer gets.
    """

    def __init__(self, tokenizer: Any, render_special_tokens: bool) -> None:
        self._tokenizer = tokenizer
        self._skip_special = not render_special_tokens
        self._ids: list[int] = []
        self._prefix = 0  # window start
        self._read = 0  # ids already turned into emitted text

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=self._skip_special))

    def feed(self, token: int) -> str:
        self._ids.append(token)
        done = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if len(text) <= len(done) or text.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(done) :]

    def flush(self) -> str:
        done = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(done) :] if len(text) > len(done) else ""


def _adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts BOS first when asked for special tokens (as llama.cpp does)."""
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(probe) and probe[0] == tokenizer.bos_token_id


def _end_token_ids(loaded: LoadedAwq) -> set[int]:
    """End-of-generation ids: the model's and generation config's eos, and the tokenizer's."""
    ids: set[int] = set()
    for source in (loaded.model.config, getattr(loaded.model, "generation_config", None)):
        value = getattr(source, "eos_token_id", None)
        values = value if isinstance(value, list | tuple) else [value]
        ids.update(int(v) for v in values if isinstance(v, int))
    if isinstance(loaded.tokenizer.eos_token_id, int):
        ids.add(loaded.tokenizer.eos_token_id)
    return ids
