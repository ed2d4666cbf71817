"""The plain types every layer speaks: a conversation's messages, sampling, a rendered
prompt, a generation's stats and a load's report.

Plain dataclasses only, importing nothing of localchat: the CLI, the TUI, the server, the
wire protocol and the backends all use them without loading a backend library.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]

# The sampling ranges, stated once: ``localchat.settings`` checks settings.toml with them,
# ``localchat.protocol`` checks requests to the server (and the remote-engine client's own).
TEMPERATURE_MAX = 5.0  # temperature is in [0, TEMPERATURE_MAX]
TOP_P_MAX = 1.0  # top_p is in (0, TOP_P_MAX]: 0 means "greedy" to llama.cpp, "off" to others
SEED_MAX = 2**32 - 2  # 2**32 - 1 is llama.cpp's "random seed"


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: the function's name and its arguments (a JSON object)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""  # OpenAI's call id, echoed back by the tool result's ``tool_call_id``


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: OpenAI's and Ollama's ``tools[].function``."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # a JSON schema


@dataclass(frozen=True)
class ReplyFormat:
    """Structured output as asked for: one JSON object, valid against ``schema`` when one
    is given (OpenAI's ``response_format``, Ollama's ``format``)."""

    schema: Mapping[str, Any] | None = None  # None: any JSON object
    name: str = "reply"  # OpenAI's json_schema.name


@dataclass(frozen=True)
class ToolUse:
    """The tools a turn may call, as asked for (OpenAI's ``tools``, ``tool_choice`` and
    ``parallel_tool_calls``; Ollama's ``tools``)."""

    tools: tuple[ToolSpec, ...] = ()
    choice: Literal["none", "auto", "required"] = "auto"
    function: str | None = None  # ``tool_choice`` named this one: the model must call it
    parallel: bool = True


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a "tool" turn: the call it answers (OpenAI)
    name: str | None = None  # a "tool" turn: the function's name (Ollama's tool_name)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = None  # None or 0: until the context is full
    seed: int | None = None
    stop_on_repetition: bool = True  # engine.repetition: end a reply that loops
    presence_penalty: float = 0.0  # OpenAI's: subtract this from every token seen so far
    frequency_penalty: float = 0.0  # OpenAI's: subtract this times how often it was seen
    # Structured output: a GBNF grammar the sampler enforces (JSON schema, tool calls).
    grammar: str | None = None
    # A lazy grammar: free text until one of these patterns (regexes) appears, then the
    # grammar from there on (a tool call that starts at the model's call marker).
    grammar_triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSpec:
    """A rendered prompt and how generation must stop for its format."""

    text: str
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    has_bos: bool = False  # the text already starts with the BOS token's text
    render_special_tokens: bool = False  # show control tokens (e.g. Reflection's <thinking>)
    # The conversation ``text`` was rendered from: a remote backend sends these to the
    # server's chat endpoint (the server applies its own template); empty: raw completion.
    messages: tuple[Message, ...] = ()
    # What the reply must be, for a remote backend to send on (the server enforces it);
    # local backends enforce ``SamplingParams.grammar``, made from the same request.
    reply_format: ReplyFormat | None = None
    tool_use: ToolUse | None = None


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float | None = None
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | repetition | cancelled


@dataclass
class LoadReport:
    """What the backend actually did at load (for llama.cpp: read from its log)."""

    load_s: float = 0.0
    buffers_bytes: dict[str, int] = field(default_factory=dict)
    n_gpu_layers_offloaded: int | None = None
    retries: list[str] = field(default_factory=list)
    log_text: str = ""


class TextStream:
    """One generation: iterate for its text pieces; ``stats`` fills in as it runs and is
    final once iteration ends.  ``close()`` stops generating at the next token (the
    finish reason is then "cancelled")."""

    def __init__(self, pieces: Iterator[str], stats: GenerationStats) -> None:
        self._pieces = pieces
        self.stats = stats

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
