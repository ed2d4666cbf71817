"""What the wire protocol parses but localchat does not do: THE one table of refusals.

Every documented request field is modelled (``protocol.openai``, ``protocol.ollama``,
``protocol.messages``) and is either honoured, harmless (no effect on the output), or
refused here with a 400 naming the field.  Switching a feature on (images with a
projector) is deleting its rows.  Tool calls, structured output and several
choices are honoured; what is refused of them is the deprecated ``functions`` API,
custom (free-form) tools, ``best_of`` and more than ``MAX_CHOICES`` choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from localchat.errors import InvalidRequest

if TYPE_CHECKING:  # the table names the models; the models call the table
    from localchat.protocol.messages import ChatMessage, OllamaMessage
    from localchat.protocol.ollama import ChatRequest, GenerateRequest, Options
    from localchat.protocol.openai import (
        ChatCompletionRequest,
        CompletionRequest,
        EmbeddingRequest,
    )

T = TypeVar("T")

FUNCTIONS = "the deprecated functions API is not supported: send tools and tool_choice"
CUSTOM_TOOLS = "custom (free-form) tools are not supported: send function tools"
NO_BEST_OF = "best_of is not supported (ask for n choices and pick one)"
MAX_CHOICES = 8  # OpenAI's ``n``: choices share the prompt, each takes a slot
TOO_MANY_CHOICES = f"at most {MAX_CHOICES} choices per request"
NO_LOGPROBS = "log probabilities are not returned by this server"
NO_PROJECTOR = "image and audio input need a multimodal projector, and this server loads none"
NO_TOKEN_IDS = "prompts as token ids are not supported: send text"


@dataclass(frozen=True)
class Refusal(Generic[T]):
    """One refused use of a field: the field as clients spell it, when a request uses it
    that way, and why it is refused."""

    field: str
    used: Callable[[T], bool]
    reason: str


def _on(value: object) -> bool:
    """A field set to something other than its "off" value."""
    return value not in (None, False, 0, "", [], {})


OPENAI_CHAT: tuple[Refusal[ChatCompletionRequest], ...] = (
    Refusal(
        "tools", lambda r: any(tool.type != "function" for tool in r.tools or ()), CUSTOM_TOOLS
    ),
    Refusal("functions", lambda r: bool(r.functions), FUNCTIONS),
    Refusal("function_call", lambda r: r.function_call not in (None, "none", "auto"), FUNCTIONS),
    Refusal("n", lambda r: (r.n or 1) > MAX_CHOICES, TOO_MANY_CHOICES),
    Refusal("logprobs", lambda r: bool(r.logprobs), NO_LOGPROBS),
    Refusal("top_logprobs", lambda r: _on(r.top_logprobs), NO_LOGPROBS),
    Refusal("logit_bias", lambda r: bool(r.logit_bias), "logit_bias is not supported"),
    Refusal("audio", lambda r: r.audio is not None, "audio output is not supported"),
    Refusal(
        "modalities",
        lambda r: bool(set(r.modalities or ()) - {"text"}),
        "only text output is supported",
    ),
    Refusal(
        "prediction", lambda r: r.prediction is not None, "predicted outputs are not supported"
    ),
    Refusal("web_search_options", lambda r: r.web_search_options is not None, "no web search"),
    Refusal(
        "reasoning_effort",
        lambda r: r.reasoning_effort is not None,
        "reasoning effort levels are not supported",
    ),
    Refusal("verbosity", lambda r: r.verbosity is not None, "verbosity is not supported"),
    Refusal("moderation", lambda r: r.moderation is not None, "nothing moderates here"),
)

OPENAI_COMPLETION: tuple[Refusal[CompletionRequest], ...] = (
    Refusal("prompt", lambda r: r.has_token_ids(), NO_TOKEN_IDS),
    Refusal(
        "prompt",
        lambda r: isinstance(r.prompt, list) and len(r.prompt) != 1,
        "one prompt per request",
    ),
    Refusal("n", lambda r: (r.n or 1) > MAX_CHOICES, TOO_MANY_CHOICES),
    Refusal("best_of", lambda r: (r.best_of or 1) > 1, NO_BEST_OF),
    Refusal("echo", lambda r: bool(r.echo), "echo is not supported"),
    Refusal("logprobs", lambda r: r.logprobs is not None, NO_LOGPROBS),
    Refusal("logit_bias", lambda r: bool(r.logit_bias), "logit_bias is not supported"),
    Refusal("suffix", lambda r: bool(r.suffix), "fill-in-the-middle (suffix) is not supported"),
)

OPENAI_EMBEDDING: tuple[Refusal[EmbeddingRequest], ...] = ()

OPENAI_MESSAGE: tuple[Refusal[ChatMessage], ...] = (
    Refusal("role", lambda m: m.role == "function", FUNCTIONS),
    Refusal("function_call", lambda m: m.function_call is not None, FUNCTIONS),
    Refusal("audio", lambda m: m.audio is not None, "audio replies are not supported"),
)

# A content part's ``type`` -> why it is refused (text and refusal parts are read).
OPENAI_CONTENT_PART: dict[str, str] = {
    "image_url": NO_PROJECTOR,
    "input_audio": NO_PROJECTOR,
    "file": "file inputs are not supported",
}

OLLAMA_CHAT: tuple[Refusal[ChatRequest], ...] = (
    Refusal("think", lambda r: isinstance(r.think, str), "thinking levels are not supported"),
    Refusal("logprobs", lambda r: bool(r.logprobs), NO_LOGPROBS),
    Refusal("top_logprobs", lambda r: _on(r.top_logprobs), NO_LOGPROBS),
)

OLLAMA_GENERATE: tuple[Refusal[GenerateRequest], ...] = (
    Refusal("images", lambda r: bool(r.images), NO_PROJECTOR),
    Refusal(
        "options.tool_choice",
        lambda r: r.options.tool_choice not in (None, "none", "auto"),
        "tools are called through /api/chat",
    ),
    Refusal("suffix", lambda r: bool(r.suffix), "fill-in-the-middle (suffix) is not supported"),
    Refusal(
        "template", lambda r: bool(r.template), "the model's own chat format applies, not this"
    ),
    Refusal("context", lambda r: bool(r.context), "send the conversation to /api/chat instead"),
    Refusal("think", lambda r: isinstance(r.think, str), "thinking levels are not supported"),
    Refusal("logprobs", lambda r: bool(r.logprobs), NO_LOGPROBS),
    Refusal("top_logprobs", lambda r: _on(r.top_logprobs), NO_LOGPROBS),
    Refusal(
        "width", lambda r: _on(r.width or r.height or r.steps), "image generation is not supported"
    ),
)

# Samplers llama.cpp has but localchat does not switch on; their "off" values pass.
OLLAMA_OPTIONS: tuple[Refusal[Options], ...] = (
    Refusal("mirostat", lambda o: _on(o.mirostat), "mirostat sampling is not supported"),
    Refusal("tfs_z", lambda o: o.tfs_z not in (None, 1.0), "tail-free sampling is not supported"),
    Refusal("typical_p", lambda o: o.typical_p not in (None, 1.0), "typical_p is not supported"),
    Refusal(
        "repeat_last_n",
        lambda o: o.repeat_last_n not in (None, 64),
        "the repeat penalty looks back 64 tokens; other windows are not supported",
    ),
)

OLLAMA_MESSAGE: tuple[Refusal[OllamaMessage], ...] = (
    Refusal("images", lambda m: bool(m.images), NO_PROJECTOR),
)


def refuse(rows: Sequence[Refusal[T]], item: T, prefix: str = "") -> None:
    """``InvalidRequest`` for the first row ``item`` uses; nothing when none."""
    for row in rows:
        if row.used(item):
            raise InvalidRequest(f"{prefix}{row.field}: {row.reason}")


def refuse_openai_messages(messages: Iterable[ChatMessage], field: str = "messages") -> None:
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        refuse(OPENAI_MESSAGE, message, f"{where}.")
        if isinstance(message.content, list):
            for part_index, part in enumerate(message.content):
                reason = OPENAI_CONTENT_PART.get(part.type)
                if reason is not None:
                    raise InvalidRequest(f"{where}.content[{part_index}]: {reason}")


def refuse_ollama_messages(messages: Iterable[OllamaMessage], field: str = "messages") -> None:
    for index, message in enumerate(messages):
        refuse(OLLAMA_MESSAGE, message, f"{field}[{index}].")
