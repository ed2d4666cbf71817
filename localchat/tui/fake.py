"""A scripted model with the shape of a loaded model (``tui.model.ChatModel``, which
``localchat.api.LoadedModel`` has too), for tests and the bench.

It replies at a fixed token rate with no llama.cpp, so timings and screens are
deterministic.  ``LOCALCHAT_FAKE_ENGINE=1 localchat`` opens the app with it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from localchat.tui.model import ReplyParser
from localchat.types import GenerationStats, Message, SamplingParams, TextStream

DEFAULT_REPLY = (
    "Here is a short answer to **{question}**.\n\n"
    "```python\nprint('hello from the scripted model')\n```\n\n"
    "That is all."
)


def default_reply(messages: Sequence[Message]) -> str:
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return DEFAULT_REPLY.format(question=" ".join(question.split())[:80])


def split_tokens(text: str) -> list[str]:
    """Word-ish pieces that join back to ``text``."""
    pieces: list[str] = []
    word = ""
    for char in text:
        word += char
        if char in " \n":
            pieces.append(word)
            word = ""
    if word:
        pieces.append(word)
    return pieces


class ScriptedModel:
    """Streams ``reply(messages)`` split into tokens at ``tokens_per_s``."""

    def __init__(
        self,
        name: str = "scripted-model",
        *,
        reply: Callable[[Sequence[Message]], str] | str | None = None,
        tokens: Sequence[str] | None = None,
        tokens_per_s: float = 400.0,
        first_token_delay_s: float = 0.0,
        n_ctx: int = 4096,
        fail_with: BaseException | None = None,
        fixed_stats: GenerationStats | None = None,
        parser_factory: Callable[[], ReplyParser] | None = None,
    ) -> None:
        self.name = name
        self.quant: str | None = "Q4_K_M"
        self.path = Path(f"/models/{name}.Q4_K_M.gguf")
        self.n_ctx = n_ctx
        self.reply = reply
        self.tokens = list(tokens) if tokens is not None else None
        self.tokens_per_s = tokens_per_s
        self.first_token_delay_s = first_token_delay_s
        self.fail_with = fail_with
        self.fixed_stats = fixed_stats  # reported after each reply (deterministic snapshots)
        self.parser_factory = parser_factory
        self.last_stats = GenerationStats()  # the latest stream's, like LoadedModel's
        self.calls: list[list[Message]] = []
        self.closed = False
        self.engine_label = "in-process scripted model"
        self.system_prompt: str | None = None
        self.plan_summary: dict[str, Any] = {  # the shape of LoadedModel.plan_summary
            "n_gpu_layers": 0,
            "n_layers": 18,
            "n_ctx": n_ctx,
            "devices": [{"device": "CPU", "total": 300 * 2**20}],
            "load_s": 0.01,
        }

    def default_sampling(self) -> SamplingParams:
        return SamplingParams()

    def _tokens_for(self, messages: Sequence[Message]) -> list[str]:
        if self.tokens is not None:
            return self.tokens
        reply = self.reply
        text = reply(messages) if callable(reply) else reply or default_reply(messages)
        return split_tokens(text)

    def stream_chat(
        self, messages: Sequence[Message], sampling: SamplingParams | None = None
    ) -> TextStream:
        """The reply's pieces; ``stats`` fill in as it streams.  Like the real engines', the
        finish reason reads "cancelled" until the last piece went out, so a stream closed
        early stays "cancelled"."""
        self.calls.append(list(messages))
        stats = GenerationStats(
            prompt_tokens=sum(self.count_tokens(m.content) for m in messages),
            finish_reason="cancelled",
        )
        self.last_stats = stats
        return TextStream(self._generate(list(messages), sampling, stats), stats)

    def _generate(
        self, messages: list[Message], sampling: SamplingParams | None, stats: GenerationStats
    ) -> Iterator[str]:
        tokens = self._tokens_for(messages)
        finish_reason = "stop"
        if sampling is not None and sampling.max_tokens and len(tokens) > sampling.max_tokens:
            tokens, finish_reason = tokens[: sampling.max_tokens], "length"
        start = time.perf_counter()
        first = start + self.first_token_delay_s
        interval = 1.0 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        for index, token in enumerate(tokens):
            _sleep_until(first + index * interval)
            if index == 0:
                stats.time_to_first_token_s = time.perf_counter() - start
                if self.fail_with is not None:
                    raise self.fail_with
            stats.completion_tokens = index + 1
            stats.total_s = time.perf_counter() - start
            decode_s = stats.total_s - (stats.time_to_first_token_s or 0.0)
            if index and decode_s > 0:
                stats.decode_tokens_per_s = index / decode_s
            yield token
        stats.finish_reason = finish_reason
        if self.fixed_stats is not None:  # the same figures after every reply (snapshots)
            for name, value in dataclasses.asdict(self.fixed_stats).items():
                setattr(stats, name, value)

    def count_tokens(self, text: str) -> int:
        return len(split_tokens(text))

    def render_prompt(self, messages: Sequence[Message]) -> str:
        return "".join(f"<{m.role}>{m.content}\n" for m in messages)

    def reply_parser(self) -> ReplyParser | None:
        return self.parser_factory() if self.parser_factory else None

    def close(self) -> None:
        self.closed = True


def scripted_loader(**model_options: Any) -> Callable[..., ScriptedModel]:
    """A loader with ``open_model``'s signature that returns a ``ScriptedModel``."""

    def load(model: str | None = None, **_options: Any) -> ScriptedModel:
        return ScriptedModel(model or "scripted-model", **model_options)

    return load


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
