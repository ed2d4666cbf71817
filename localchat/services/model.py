"""A loaded model: what ``open_model`` returns to the CLI, the app, the server and the API."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel

from localchat.engine.base import Backend
from localchat.engine.repetition import guard_stream
from localchat.errors import InvalidRequest
from localchat.formats import ChatFormat, ReplyParser
from localchat.hub import ProgressCallback
from localchat.planner import Plan
from localchat.reference import ModelRef
from localchat.services.structured import PreparedChat, prepare_chat, prepare_completion
from localchat.services.structured_api import (
    ToolReply,
    collect_reply,
    parse_reply,
    reply_format_for,
    tool_specs,
)
from localchat.settings import Settings
from localchat.store import LocalModel
from localchat.types import (
    GenerationStats,
    Message,
    PromptSpec,
    ReplyFormat,
    SamplingParams,
    TextStream,
    ToolSpec,
    ToolUse,
)

Notice = Callable[[str], None]
ModelT = TypeVar("ModelT", bound=BaseModel)
Conversation = Sequence[Message] | str  # a str is one user turn

SEED_RANGE = 2**32 - 1  # llama.cpp's seeds: 0 .. 2^32-2 (2^32-1 means "random")

# A reply's length limit unless the model's format, settings.toml or the caller set one
# (README, "Reply length").  Base models get a shorter one from their chat format.
DEFAULT_MAX_TOKENS = 2048


@dataclass
class OpenOptions:
    """How to open a model; every field is optional."""

    n_ctx: int | None = None
    n_threads: int | None = None  # CPU threads; None: settings.toml's, else from the hardware
    quant: str | None = None
    allow_download: bool = True
    progress: ProgressCallback | None = None
    notice: Notice | None = None  # one-line notes for the user (fallbacks, retries)
    settings_overrides: dict[str, Any] = field(default_factory=dict)  # backend load settings
    settings: Settings | None = None  # the user's settings; None reads settings.toml
    capture_native_stderr: bool = True  # False inside the TUI, which draws on stderr
    engine: str | None = None  # an OpenAI-compatible base URL; else LOCALCHAT_ENGINE
    local: bool = False  # in this process even when a localchat server is running
    api_key: str | None = None  # for the engine or server; else LOCALCHAT_API_KEY
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..."; None: settings.toml's
    link: str | None = None  # network speed to the workers ("1Gbit"), for the plan
    parallel: int | str = 1  # slots (streams decoded together), or "auto" (`serve`'s)


class LoadedModel:
    """A model loaded in the engine; stays loaded until ``close()``."""

    def __init__(
        self,
        ref: ModelRef,
        local: LocalModel | None,  # None: a server runs it (``engine.remote_engine``)
        plan: Plan | None,  # None: a server planned it
        backend: Backend,
        chat_format: ChatFormat,
        user_settings: Settings | None = None,
    ) -> None:
        self.ref = ref
        self.local = local
        self.plan = plan
        self.backend = backend
        self.chat_format = chat_format
        self.user_settings = user_settings or Settings()

    @property
    def name(self) -> str:
        return self.local.name if self.local is not None else self.ref.display_name

    @property
    def quant(self) -> str | None:
        return self.local.quant if self.local is not None else self.ref.quant

    @property
    def path(self) -> Path | None:
        return self.local.path if self.local is not None else None

    @property
    def model_format(self) -> str | None:
        """The model format's name ("gguf", "awq"); None when a server runs the model."""
        return self.local.format if self.local is not None else None

    @property
    def engine_label(self) -> str:
        """Where the model runs: "in-process llama.cpp", "localchat server http://...", ..."""
        described = self.backend.settings.describe()
        backend, engine = described["backend"], described.get("engine")
        return f"{backend} {engine}" if engine else f"in-process {backend}"

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    @property
    def plan_summary(self) -> dict[str, Any]:
        summary = dict(self.plan.to_json()) if self.plan is not None else {}
        summary.update(self.backend.settings.describe())  # what was loaded, after any retry
        summary["load_s"] = round(self.backend.load_report.load_s, 3)
        summary["load_retries"] = list(self.backend.load_report.retries)
        return summary

    @property
    def max_streams(self) -> int:
        """How many replies it generates at once (its slots); more wait their turn."""
        return self.backend.max_streams

    @property
    def slots_reason(self) -> str:
        """Why the plan gave it this many slots (``--parallel auto``), or ""."""
        return self.plan.parallel_reason if self.plan is not None else ""

    @property
    def last_stats(self) -> GenerationStats:
        return self.backend.last_stats

    @property
    def system_prompt(self) -> str | None:
        """The system prompt a new conversation starts with (settings.toml's), if any."""
        return self.user_settings.system_prompt or None

    def default_sampling(self) -> SamplingParams:
        """Sampling for this model: ``DEFAULT_MAX_TOKENS``, then the chat format's and the
        catalog entry's recommendations, then the user's settings over them."""
        values: dict[str, Any] = {
            "max_tokens": DEFAULT_MAX_TOKENS,
            **self.chat_format.default_sampling,
        }
        entry = self.ref.entry
        if entry is not None:
            values.update(entry.sampling)
        known = {k: v for k, v in values.items() if k in SamplingParams.__dataclass_fields__}
        return self.user_settings.sampling(SamplingParams(**known))

    def stream_chat(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        *,
        reply_format: ReplyFormat | None = None,
        tool_use: ToolUse | None = None,
    ) -> TextStream:
        """The reply as text pieces; ``close()`` it to stop generating.

        ``last_stats.finish_reason`` says why it ended: stop, length (``max_tokens``),
        repetition (it began to loop; ``engine.repetition``) or cancelled.  ``stop``
        adds stop strings to the chat format's.  ``reply_format`` / ``tool_use``: the
        reply is JSON (valid against the schema) / may call tools; the text is then what
        the model wrote (``prepare_chat``'s splitter reads the calls out of it).
        """
        prepared = self.prepare_chat(
            messages, sampling, stop, reply_format=reply_format, tool_use=tool_use
        )
        return self.stream_prepared(prepared)

    def prepare_chat(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        *,
        reply_format: ReplyFormat | None = None,
        tool_use: ToolUse | None = None,
    ) -> PreparedChat:
        """The turn ready to run (prompt, sampling with its grammar, reply splitter);
        ``InvalidRequest`` for a schema or tool that cannot be enforced."""
        return prepare_chat(
            self.chat_format,
            messages,
            sampling or self.default_sampling(),
            stop,
            reply_format=reply_format,
            tool_use=tool_use,
            passthrough=self.local is None,
        )

    def stream_prepared(self, prepared: PreparedChat) -> TextStream:
        return self.stream_prepared_choices(prepared, n=1)[0]

    def stream_prepared_choices(self, prepared: PreparedChat, *, n: int) -> list[TextStream]:
        """``n`` replies to a prepared turn (OpenAI's ``n``), generated side by side."""
        return self._streams(prepared.prompt, prepared.sampling, n)

    def stream_chat_choices(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        *,
        n: int,
    ) -> list[TextStream]:
        """``n`` replies to one conversation (OpenAI's ``n``), generated side by side."""
        return self.stream_prepared_choices(self.prepare_chat(messages, sampling, stop), n=n)

    @overload
    def structured(
        self,
        messages: Conversation,
        schema: type[ModelT],
        sampling: SamplingParams | None = None,
    ) -> ModelT: ...

    @overload
    def structured(
        self,
        messages: Conversation,
        schema: Mapping[str, Any] | None = None,
        sampling: SamplingParams | None = None,
    ) -> dict[str, Any]: ...

    def structured(
        self,
        messages: Conversation,
        schema: Mapping[str, Any] | type[BaseModel] | None = None,
        sampling: SamplingParams | None = None,
    ) -> Any:
        """The reply as JSON valid against ``schema`` (a JSON schema, or a pydantic model
        class: then an instance of it; None: any JSON object), enforced by the sampler.

        ``InvalidRequest`` for a schema keyword the grammar cannot enforce; ``EngineError``
        when the reply stopped (``max_tokens``, the context) before the JSON was whole."""
        reply_format = reply_format_for(schema)
        prepared = self.prepare_chat(_turns(messages), sampling, reply_format=reply_format)
        stream = self.stream_prepared(prepared)
        with closing(stream):  # a stream left open keeps its slot
            reply = collect_reply(prepared.splitter(), stream, stream.stats)
        return parse_reply(reply.text, schema, stream.stats)  # thinking (a server's) apart

    def call_tools(
        self,
        messages: Conversation,
        tools: Sequence[ToolSpec | Callable[..., Any]],
        *,
        choice: Literal["none", "auto", "required"] = "auto",
        function: str | None = None,
        parallel: bool = True,
        sampling: SamplingParams | None = None,
    ) -> ToolReply:
        """One turn with ``tools`` (``ToolSpec``s, or Python functions: their signature
        and docstring describe them): the answer's text and the calls the model made.
        ``choice`` "required" (or ``function``, one tool's name) makes it call."""
        tool_use = ToolUse(tool_specs(tools), choice, function, parallel)
        prepared = self.prepare_chat(_turns(messages), sampling, tool_use=tool_use)
        stream = self.stream_prepared(prepared)
        with closing(stream):  # a stream left open keeps its slot
            return collect_reply(prepared.splitter(), stream, stream.stats)

    def stream_completion(
        self,
        text: str,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        *,
        reply_format: ReplyFormat | None = None,
    ) -> TextStream:
        """Continue ``text`` as it is, without the chat format (a raw completion);
        ``reply_format``: the continuation is JSON (valid against the schema)."""
        streams = self.stream_completion_choices(
            text, sampling, stop, n=1, reply_format=reply_format
        )
        return streams[0]

    def stream_completion_choices(
        self,
        text: str,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        *,
        n: int,
        reply_format: ReplyFormat | None = None,
    ) -> list[TextStream]:
        """``n`` continuations of ``text`` (a raw completion), generated side by side."""
        prompt, sampling = prepare_completion(
            text,
            sampling or self.default_sampling(),
            stop,
            reply_format=reply_format,
            passthrough=self.local is None,
        )
        return self._streams(prompt, sampling, n)

    def _streams(self, prompt: PromptSpec, sampling: SamplingParams, n: int) -> list[TextStream]:
        if n == 1:
            streams = [self.backend.stream(prompt, sampling)]
        else:
            streams = self._choice_streams(prompt, sampling, n)
        if not sampling.stop_on_repetition:
            return streams
        return [guard_stream(stream) for stream in streams]

    def check_choices(self, n: int) -> None:
        """``InvalidRequest`` naming ``n`` when this model cannot generate ``n`` at once."""
        if not 1 <= n <= self.max_streams:
            raise InvalidRequest(
                f"n: {n} choices asked for, but {self.name} generates {self.max_streams} "
                f"{'reply' if self.max_streams == 1 else 'replies'} at once",
                hint="ask for fewer choices, or serve the model with more --parallel slots",
            )

    def _choice_streams(
        self, prompt: PromptSpec, sampling: SamplingParams, n: int
    ) -> list[TextStream]:
        """``n`` streams: one prefill shared by ``n`` slots where the backend can (llama.cpp),
        else ``n`` requests (a remote server batches them); choice ``i`` draws with seed
        ``seed + i``."""
        self.check_choices(n)
        shared_prefill = getattr(self.backend, "stream_choices", None)  # not every backend has it
        if shared_prefill is not None:
            streams: list[TextStream] = shared_prefill(prompt, sampling, n)
            return streams
        streams = []
        try:
            for choice in range(n):
                seed = _choice_seed(sampling.seed, choice)
                streams.append(self.backend.stream(prompt, replace(sampling, seed=seed)))
        except BaseException:
            for stream in streams:
                stream.close()
            raise
        return streams

    def render_prompt(self, messages: Sequence[Message]) -> str:
        return self.chat_format.render(list(messages))

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def reply_parser(self) -> ReplyParser | None:
        return self.chat_format.reply_parser()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _choice_seed(seed: int | None, choice: int) -> int | None:
    return None if seed is None else (seed + choice) % SEED_RANGE


def _turns(messages: Conversation) -> list[Message]:
    return [Message("user", messages)] if isinstance(messages, str) else list(messages)
