"""Ollama's API as pydantic models: chat, generate, embed and embeddings (legacy); the
model-management routes (tags, ps, show, pull, version) are in ``ollama_models``.

``options`` models every option Ollama documents: the samplers localchat runs are
honoured, runtime knobs (GPU layers, threads, batch, mmap...) are harmless because the
planner decides them and they do not change the text, and samplers localchat does not
run are refused unless set to their "off" value (``protocol.refusals``).  ``format``
(``"json"`` or a JSON schema) and ``tools`` are honoured; ``images`` are refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field

from localchat.errors import ConfigError
from localchat.protocol import refusals
from localchat.protocol.base import (
    JsonObject,
    MinP,
    ModelName,
    NumCtx,
    Penalty,
    RepeatPenalty,
    ReplyModel,
    RequestModel,
    Seed,
    Stop,
    Temperature,
    TopK,
    TopP,
    is_none,
    stop_strings,
    with_overrides,
)
from localchat.protocol.messages import OllamaMessage, ollama_messages
from localchat.protocol.tools import FunctionDefinition, OllamaReplyToolCall
from localchat.types import (
    GenerationStats,
    Message,
    ReplyFormat,
    SamplingParams,
    ToolSpec,
    ToolUse,
)

_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration_s(value: str | float | None, default_s: float) -> float:
    """Ollama's keep_alive forms: "5m", "30s", "1h", "500ms", a number of seconds, -1."""
    if value is None or value == "":
        return default_s
    if isinstance(value, bool):
        raise ConfigError(f"bad duration {value!r}", hint='use e.g. "5m", "30s", 0 or -1')
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if match is None:
        raise ConfigError(f"bad duration {value!r}", hint='use e.g. "5m", "30s", 0 or -1')
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _checked_duration(value: str | float | None) -> str | float | None:
    try:
        parse_duration_s(value, 0.0)
    except ConfigError as exc:
        raise ValueError(exc.one_line()) from exc
    return value


Duration = Annotated[str | float | None, AfterValidator(_checked_duration)]

# -- requests --------------------------------------------------------------------------


class Options(RequestModel):
    # honoured
    num_ctx: NumCtx | None = None
    num_predict: int | None = Field(default=None, ge=-2)  # -1: until the context is full, -2 too
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: Seed | None = None
    stop: Stop = None
    # localchat's extras, as OpenAI has them (clients send them in their options mapping):
    # tool_choice "none", "auto", "required", or a tool's name (the model must call that
    # one); parallel_tool_calls false allows one call
    tool_choice: str | None = Field(default=None, min_length=1, max_length=64)
    parallel_tool_calls: bool | None = None
    # refused unless "off" (protocol.refusals.OLLAMA_OPTIONS)
    mirostat: int | None = Field(default=None, ge=0, le=2)
    tfs_z: float | None = None
    typical_p: float | None = None
    repeat_last_n: int | None = Field(default=None, ge=-1)
    # harmless: only matter with mirostat, which is refused
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    # harmless: how the model runs is the planner's choice; none changes the text
    numa: bool | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    num_thread: int | None = None
    num_keep: int | None = None  # tokens kept when the context shifts; it never does here
    penalize_newline: bool | None = None  # Ollama itself ignores it now

    def to_sampling(self, defaults: SamplingParams) -> SamplingParams:
        max_tokens = self.num_predict
        if max_tokens is not None and max_tokens <= 0:
            max_tokens = 0  # Ollama's -1/-2: until the context is full
        return with_overrides(
            defaults,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            max_tokens=max_tokens,
        )

    def check_supported(self) -> None:
        refusals.refuse(refusals.OLLAMA_OPTIONS, self, "options.")


class OllamaTool(RequestModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition

    def to_spec(self) -> ToolSpec:
        return self.function.to_spec()


Think = bool | Literal["low", "medium", "high"] | None


class _Generation(RequestModel):
    model: ModelName = ""  # honoured; empty or missing is a 400 (the server checks)
    name: ModelName = ""  # older clients' spelling of model
    stream: bool = True
    options: Options = Field(default_factory=Options)
    keep_alive: Duration = None  # honoured: how long the model stays loaded after
    format: Literal["", "json"] | JsonObject | None = None  # honoured: JSON, or a schema
    think: Think = None  # true/unset: thinking apart, in "thinking"; false: left out
    logprobs: bool | None = None  # refused when true
    top_logprobs: int | None = Field(default=None, ge=0, le=20)  # refused

    def model_name(self) -> str:
        return self.model or self.name

    def keep_alive_s(self) -> float | None:
        return None if self.keep_alive is None else parse_duration_s(self.keep_alive, 0.0)

    def stop_strings(self) -> tuple[str, ...]:
        return stop_strings(self.options.stop)

    def include_thinking(self) -> bool:
        return self.think is not False

    def reply_format(self) -> ReplyFormat | None:
        """``format``: "json" is any JSON object, an object is a JSON schema."""
        if not self.format:
            return None
        if self.format == "json":
            return ReplyFormat()
        return ReplyFormat(dict(self.format), "format")


class ChatRequest(_Generation):
    """``POST /api/chat``; no messages only loads (or, with keep_alive 0, unloads)."""

    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[OllamaTool] | None = None  # honoured: the model may call them

    def check_supported(self) -> None:
        refusals.refuse(refusals.OLLAMA_CHAT, self)
        refusals.refuse_ollama_messages(self.messages)
        self.options.check_supported()

    def chat_messages(self) -> list[Message]:
        return ollama_messages(self.messages)

    def tool_specs(self) -> list[ToolSpec]:
        return [tool.to_spec() for tool in self.tools or ()]

    def tool_use(self) -> ToolUse | None:
        """The tools; the model may call them or answer, unless ``options.tool_choice``
        (localchat's extra) says otherwise."""
        choice = self.options.tool_choice
        if not self.tools and choice in (None, "none", "auto"):
            return None
        specs = tuple(self.tool_specs())
        parallel = self.options.parallel_tool_calls is not False
        if choice is None or choice == "auto":
            return ToolUse(specs, "auto", None, parallel)
        if choice in ("none", "required"):
            return ToolUse(specs, "none" if choice == "none" else "required", None, parallel)
        return ToolUse(specs, "required", choice, parallel)


class GenerateRequest(_Generation):
    """``POST /api/generate``; an empty prompt only loads (or unloads)."""

    prompt: str = ""
    system: str | None = None  # honoured: a system turn before the prompt
    raw: bool = False  # honoured: the prompt as it is, no chat template
    suffix: str | None = None  # refused
    template: str | None = None  # refused
    context: list[int] | None = None  # refused (the legacy conversation state)
    images: list[str] | None = None  # refused
    width: int | None = None  # image generation: refused
    height: int | None = None
    steps: int | None = None

    def check_supported(self) -> None:
        refusals.refuse(refusals.OLLAMA_GENERATE, self)
        self.options.check_supported()

    def chat_messages(self) -> list[Message]:
        messages = [Message("system", self.system)] if self.system else []
        return [*messages, Message("user", self.prompt)]


class EmbedRequest(RequestModel):
    """``POST /api/embed``."""

    model: ModelName = ""
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)
    keep_alive: Duration = None
    options: Options = Field(default_factory=Options)

    def check_supported(self) -> None:
        self.options.check_supported()


class EmbeddingsRequest(RequestModel):
    """``POST /api/embeddings``, the superseded single-prompt form."""

    model: ModelName = ""
    prompt: str = ""
    keep_alive: Duration = None
    options: Options = Field(default_factory=Options)

    def check_supported(self) -> None:
        self.options.check_supported()


# -- replies ---------------------------------------------------------------------------


def iso_time(unix_s: float | None = None) -> str:
    """Ollama's timestamps: ISO 8601 in UTC with a ``Z``."""
    moment = datetime.now(UTC) if unix_s is None else datetime.fromtimestamp(unix_s, UTC)
    return moment.isoformat().replace("+00:00", "Z")


class _Timed(ReplyModel):
    """The fields every chat/generate line carries, and the last line's stats."""

    model: str = ""
    created_at: str = Field(default_factory=iso_time)
    done: bool = False
    done_reason: str | None = Field(default=None, exclude_if=is_none)
    total_duration: int | None = Field(default=None, exclude_if=is_none)  # nanoseconds
    load_duration: int | None = Field(default=None, exclude_if=is_none)
    prompt_eval_count: int | None = Field(default=None, exclude_if=is_none)
    prompt_eval_duration: int | None = Field(default=None, exclude_if=is_none)
    eval_count: int | None = Field(default=None, exclude_if=is_none)
    eval_duration: int | None = Field(default=None, exclude_if=is_none)

    def finished(self, reason: str, stats: GenerationStats | None, total_s: float) -> Self:
        """This line as the last one: done, why, and (after a generation) its stats."""
        self.done, self.done_reason = True, reason
        if stats is not None:
            ttft_s = stats.time_to_first_token_s or 0.0
            self.total_duration = _ns(total_s)
            self.load_duration = _ns(max(0.0, total_s - stats.total_s))
            self.prompt_eval_count = stats.prompt_tokens
            self.prompt_eval_duration = _ns(ttft_s)
            self.eval_count = stats.completion_tokens
            self.eval_duration = _ns(max(0.0, stats.total_s - ttft_s))
        return self


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def done_reason(stats: GenerationStats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


class ReplyMessage(ReplyModel):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = Field(default=None, exclude_if=is_none)
    tool_calls: list[OllamaReplyToolCall] | None = Field(default=None, exclude_if=is_none)


class ChatReply(_Timed):
    message: ReplyMessage = Field(default_factory=ReplyMessage)


class GenerateReply(_Timed):
    response: str = ""
    thinking: str | None = Field(default=None, exclude_if=is_none)


class EmbedReply(ReplyModel):
    model: str = ""
    embeddings: list[list[float]] = Field(default_factory=list)
    total_duration: int | None = Field(default=None, exclude_if=is_none)
    load_duration: int | None = Field(default=None, exclude_if=is_none)
    prompt_eval_count: int | None = Field(default=None, exclude_if=is_none)


class EmbeddingsReply(ReplyModel):
    embedding: list[float] = Field(default_factory=list)


class ErrorReply(ReplyModel):
    """``{"error": "message"}``."""

    error: str
