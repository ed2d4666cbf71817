"""OpenAI's API as pydantic models: chat completions, completions, embeddings, the models
list, stream chunks, usage and the error body.

Requests model every documented field (an unknown one is a 400) and convert themselves to
engine parameters (``to_sampling``, ``stop_strings``, ``chat_messages``).  Which fields
are honoured, harmless or refused is said next to each; the refusals themselves live in
``protocol.refusals``.  Replies are read leniently (any OpenAI-compatible server may add
fields or leave some out), and written in full by ``localchat serve``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, field_validator

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
from localchat.protocol.messages import ChatMessage, openai_messages
from localchat.protocol.tools import (
    FunctionDefinition,
    NamedFunction,
    NamedToolChoice,
    ReplyToolCall,
    ResponseFormat,
    ToolCallDelta,
    ToolDefinition,
)
from localchat.types import (
    GenerationStats,
    Message,
    ReplyFormat,
    SamplingParams,
    ToolSpec,
    ToolUse,
)

MAX_EMBEDDING_INPUTS = 2048

# -- requests --------------------------------------------------------------------------


class StreamOptions(RequestModel):
    include_usage: bool = False  # honoured: a last chunk with ``usage``
    include_obfuscation: bool | None = None  # harmless: no padding is sent


class AudioOutput(RequestModel):
    voice: str | JsonObject
    format: str


class _Sampling(RequestModel):
    """The fields chat and text completions share."""

    model: ModelName = ""  # honoured; empty or missing is a 400 (the server checks)
    stream: bool = False  # honoured
    stream_options: StreamOptions | None = None  # honoured
    max_tokens: int | None = Field(default=None, ge=1)  # honoured
    temperature: Temperature | None = None  # honoured
    top_p: TopP | None = None  # honoured
    seed: Seed | None = None  # honoured
    stop: Stop = None  # honoured (the one rule: protocol.base)
    presence_penalty: Penalty | None = None  # honoured
    frequency_penalty: Penalty | None = None  # honoured
    n: int | None = Field(default=None, ge=1)  # honoured up to the model's slots (8 at most)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None  # refused
    user: str | None = None  # harmless: an end-user id for the provider's abuse checks
    # localchat's extras (llama.cpp's samplers; the context size the model loads with)
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    num_ctx: NumCtx | None = None

    def _max_tokens(self) -> int | None:
        return self.max_tokens

    def to_sampling(self, defaults: SamplingParams) -> SamplingParams:
        """The model's default sampling with this request's values over it."""
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
            max_tokens=self._max_tokens(),
        )

    def stop_strings(self) -> tuple[str, ...]:
        return stop_strings(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)  # honoured (protocol.messages)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # honoured (over max_tokens)
    tools: list[ToolDefinition] | None = None  # function tools honoured, custom ones refused
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None  # honoured
    parallel_tool_calls: bool | None = None  # honoured
    functions: list[FunctionDefinition] | None = None  # deprecated tools: refused
    function_call: Literal["none", "auto"] | NamedFunction | None = None  # refused
    response_format: ResponseFormat | None = None  # honoured: text, json_object, json_schema
    logprobs: bool | None = None  # refused when true
    top_logprobs: int | None = Field(default=None, ge=0, le=20)  # refused
    audio: AudioOutput | None = None  # refused
    modalities: list[Literal["text", "audio"]] | None = None  # text honoured, audio refused
    prediction: JsonObject | None = None  # refused
    web_search_options: JsonObject | None = None  # refused
    reasoning_effort: str | None = None  # refused
    verbosity: str | None = None  # refused
    moderation: JsonObject | None = None  # refused: nothing moderates here
    metadata: dict[str, str] | None = None  # harmless: stored by OpenAI, not here
    store: bool | None = None  # harmless: nothing is stored (serve --history aside)
    service_tier: str | None = None  # harmless: one tier here
    prompt_cache_key: str | None = None  # harmless: caching, not output
    prompt_cache_options: JsonObject | None = None  # harmless
    prompt_cache_retention: str | None = None  # harmless
    safety_identifier: str | None = None  # harmless

    def _max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def check_supported(self) -> None:
        refusals.refuse(refusals.OPENAI_CHAT, self)
        refusals.refuse_openai_messages(self.messages)

    def chat_messages(self) -> list[Message]:
        return openai_messages(self.messages)

    def tool_specs(self) -> list[ToolSpec]:
        return [tool.to_spec() for tool in self.tools or ()]

    def tool_use(self) -> ToolUse | None:
        """``tools``, ``tool_choice`` and ``parallel_tool_calls``; None without tools."""
        choice = self.tool_choice
        if not self.tools and choice in (None, "none", "auto"):
            return None
        parallel = self.parallel_tool_calls is not False
        if isinstance(choice, NamedToolChoice):
            return ToolUse(tuple(self.tool_specs()), "required", choice.function.name, parallel)
        return ToolUse(tuple(self.tool_specs()), choice or "auto", None, parallel)

    def reply_format(self) -> ReplyFormat | None:
        return self.response_format.to_reply_format() if self.response_format else None


Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` (the legacy text completion: a raw prompt, no template)."""

    prompt: Prompt  # one string honoured; token ids and several prompts refused
    best_of: int | None = Field(default=None, ge=1)  # 1 honoured, more refused
    echo: bool | None = None  # refused when true
    logprobs: int | None = Field(default=None, ge=0, le=5)  # refused
    suffix: str | None = None  # refused

    def check_supported(self) -> None:
        refusals.refuse(refusals.OPENAI_COMPLETION, self)

    def has_token_ids(self) -> bool:
        return isinstance(self.prompt, list) and any(not isinstance(p, str) for p in self.prompt)

    def prompt_text(self) -> str:
        """The one prompt (``check_supported`` has refused the other shapes)."""
        if isinstance(self.prompt, str):
            return self.prompt
        first = self.prompt[0] if self.prompt else ""
        return first if isinstance(first, str) else ""


class EmbeddingRequest(RequestModel):
    """``POST /v1/embeddings``."""

    model: ModelName = ""
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None  # harmless

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: Prompt) -> Prompt:
        one = isinstance(value, str) or (bool(value) and isinstance(value[0], int))
        items = [value] if one else value
        if not items or len(items) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"1 to {MAX_EMBEDDING_INPUTS} inputs")
        empty = next((index for index, item in enumerate(items) if item in ("", [])), None)
        if empty is not None:
            raise ValueError("an empty string" if one else f"item {empty} is empty")
        return value

    def check_supported(self) -> None:
        refusals.refuse(refusals.OPENAI_EMBEDDING, self)

    def inputs(self) -> list[str | list[int]]:
        """Each input: a text, or a list of token ids (one bare list is one input)."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [[item for item in value if isinstance(item, int)]]
        return [item for item in value if isinstance(item, str | list)]


# -- replies ---------------------------------------------------------------------------


class Usage(ReplyModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_stats(cls, stats: GenerationStats) -> Usage:
        return cls(
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            total_tokens=stats.prompt_tokens + stats.completion_tokens,
        )


class Timings(ReplyModel):
    """llama.cpp's ``timings``, sent beside ``usage`` (the remote backend reads them)."""

    prompt_n: int | None = None
    predicted_n: int | None = None
    predicted_per_second: float | None = Field(default=None, exclude_if=is_none)
    prompt_ms: float | None = Field(default=None, exclude_if=is_none)

    @classmethod
    def from_stats(cls, stats: GenerationStats) -> Timings:
        tok_s = stats.decode_tokens_per_s
        ttft_s = stats.time_to_first_token_s
        return cls(
            prompt_n=stats.prompt_tokens,
            predicted_n=stats.completion_tokens,
            predicted_per_second=round(tok_s, 3) if tok_s else None,
            prompt_ms=round(ttft_s * 1000, 3) if ttft_s is not None else None,
        )


class AssistantMessage(ReplyModel):
    role: str = "assistant"
    content: str | None = None
    reasoning_content: str | None = Field(default=None, exclude_if=is_none)  # vLLM's, DeepSeek's
    reasoning: str | None = Field(default=None, exclude_if=is_none)  # what some servers call it
    tool_calls: list[ReplyToolCall] | None = Field(default=None, exclude_if=is_none)


class Delta(ReplyModel):
    """A streamed piece of the assistant's message; unset fields are left out."""

    role: str | None = Field(default=None, exclude_if=is_none)
    content: str | None = Field(default=None, exclude_if=is_none)
    reasoning_content: str | None = Field(default=None, exclude_if=is_none)
    reasoning: str | None = Field(default=None, exclude_if=is_none)
    tool_calls: list[ToolCallDelta] | None = Field(default=None, exclude_if=is_none)

    def reasoning_text(self) -> str:
        return self.reasoning_content or self.reasoning or ""


class ChatChoice(ReplyModel):
    index: int = 0
    message: AssistantMessage = Field(default_factory=AssistantMessage)
    finish_reason: str | None = None
    logprobs: JsonValue = None


class ChatCompletionResponse(ReplyModel):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[ChatChoice] = Field(default_factory=list)
    usage: Usage | None = Field(default=None, exclude_if=is_none)
    timings: Timings | None = Field(default=None, exclude_if=is_none)


class ChunkChoice(ReplyModel):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: JsonValue = Field(default=None, exclude_if=is_none)


class ChatCompletionChunk(ReplyModel):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = Field(default=None, exclude_if=is_none)  # the last chunk, when asked
    timings: Timings | None = Field(default=None, exclude_if=is_none)


class CompletionChoice(ReplyModel):
    index: int = 0
    text: str = ""
    logprobs: JsonValue = None
    finish_reason: str | None = None


class CompletionResponse(ReplyModel):
    """A text completion, whole or (the same shape) one streamed chunk of it."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice] = Field(default_factory=list)
    usage: Usage | None = Field(default=None, exclude_if=is_none)
    timings: Timings | None = Field(default=None, exclude_if=is_none)


class ModelCard(ReplyModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "localchat"


class ModelList(ReplyModel):
    object: str = "list"
    data: list[ModelCard] = Field(default_factory=list)


class Embedding(ReplyModel):
    object: str = "embedding"
    embedding: list[float] | str  # str: base64 of little-endian float32
    index: int = 0


class EmbeddingUsage(ReplyModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(ReplyModel):
    object: str = "list"
    data: list[Embedding] = Field(default_factory=list)
    model: str = ""
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)


class ErrorDetail(ReplyModel):
    message: str = ""
    type: str = "server_error"
    param: str | None = None
    code: str | int | None = None  # llama-server sends the status here


class ErrorResponse(ReplyModel):
    """``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


def finish_reason(stats: GenerationStats, called: bool = False) -> str:
    """OpenAI's vocabulary: "tool_calls" when the model called tools, "length" when
    ``max_tokens`` (or the context) ran out, else "stop" (a stop string, the end of the
    turn, the repetition guard)."""
    if called:
        return "tool_calls"
    return "length" if stats.finish_reason == "length" else "stop"
