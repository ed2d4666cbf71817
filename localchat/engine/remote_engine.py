"""The remote backend: a model served by an OpenAI-compatible server.

vLLM, llama-server, ``python -m llama_cpp.server``, LM Studio, Ollama or another
``localchat serve``: the prompt's messages go to ``/chat/completions`` (the server
applies its own chat template), a raw prompt to ``/completions``; the reply streams
back as server-sent events.  Requests are built, and replies, chunks and errors read,
through ``localchat.protocol`` (the models the server itself uses), leniently: another
server may add fields or leave some out.  Stats come from the server's ``usage`` (and
llama.cpp's ``timings`` when sent), time to first token from the client's clock.  A
reasoning model's ``reasoning_content`` is wrapped in ``<thinking>`` tags, so the same
reply parser that splits Reflection's replies keeps it apart from the answer.  Structured
output and tools pass through (``response_format``, ``tools``, ``tool_choice``,
``parallel_tool_calls``: the server enforces them); the calls a server streams back are
joined and written as ``<tool_call>{"name": …, "arguments": …}</tool_call>`` blocks, which
the caller's tool-call parser reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from localchat.engine.decode import decode_rate
from localchat.engine.settings import RemoteSettings
from localchat.errors import InvalidRequest, ModelNotFound, RemoteEngineError
from localchat.protocol import SERVER_DEFAULT_MODEL, parse_json, validate
from localchat.protocol.errors import error_from_response, error_from_stream
from localchat.protocol.messages import to_openai_messages
from localchat.protocol.ollama import GenerateReply, GenerateRequest
from localchat.protocol.openai import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionRequest,
    CompletionResponse,
    ModelList,
    Timings,
    Usage,
)
from localchat.protocol.tools import ToolCallDelta
from localchat.types import (
    GenerationStats,
    LoadReport,
    PromptSpec,
    ReplyFormat,
    SamplingParams,
    TextStream,
    ToolUse,
)

ReplyT = TypeVar("ReplyT", bound=BaseModel)
MAX_STREAMS = 64  # the server batches or queues them on its side
_CHARS_PER_TOKEN = 4  # count_tokens' estimate: servers do not share one tokenize endpoint


class RemoteBackend:
    """One model on a server; ``close()`` drops the connection, the server keeps the model."""

    def __init__(self, settings: RemoteSettings, retry: Any = None) -> None:
        self.settings = settings
        self.load_report = LoadReport()
        self._stats = GenerationStats()
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        )
        started = time.perf_counter()
        try:
            self.model_name = self._load() if settings.is_localchat else self._pick_model()
        except BaseException:
            self._client.close()
            raise
        self.load_report.load_s = time.perf_counter() - started

    @property
    def n_ctx(self) -> int:
        return self.settings.n_ctx or 0

    @property
    def last_stats(self) -> GenerationStats:
        return self._stats

    # -- opening ---------------------------------------------------------

    def _load(self) -> str:
        """Ask a localchat server to load the model now (Ollama's empty /api/generate);
        no model named means the server's default, asked for by its documented name."""
        wanted = self.settings.model or SERVER_DEFAULT_MODEL
        fields: dict[str, Any] = {"model": wanted}
        if self.settings.n_ctx:
            fields["options"] = {"num_ctx": self.settings.n_ctx}
        request = validate(GenerateRequest, fields)
        root = self.settings.base_url.rstrip("/").removesuffix("/v1")
        reply = self._request("POST", f"{root}/api/generate", GenerateReply, request)
        return reply.model or wanted

    def _pick_model(self) -> str:
        """The model's name as the server lists it; the first one when none was named."""
        listed = [card.id for card in self._request("GET", "/models", ModelList).data]
        wanted = self.settings.model
        if not wanted:
            if not listed:
                raise ModelNotFound(f"{self.settings.base_url} lists no models")
            return listed[0]
        if listed and wanted not in listed:
            raise ModelNotFound(
                f"{self.settings.base_url} has no model {wanted!r}",
                hint=f"it lists: {', '.join(listed[:8])}",
            )
        return wanted

    def _request(
        self, method: str, url: str, reply: type[ReplyT], body: BaseModel | None = None
    ) -> ReplyT:
        json = _wire(body) if body is not None else None
        try:
            response = self._client.request(method, url, json=json)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content, self._source)
        try:
            return validate(reply, parse_json(response.content, "the reply"))
        except InvalidRequest as exc:  # the server's fault, not the request's
            raise RemoteEngineError(f"{self._source} sent an unexpected reply: {exc}") from exc

    @property
    def _source(self) -> str:
        return self.settings.base_url

    def _unreachable(self, exc: httpx.HTTPError) -> RemoteEngineError:
        return RemoteEngineError(
            f"the engine at {self._source} failed: {type(exc).__name__}: {exc}",
            hint="is the server running? --local runs the model in this process",
        )

    # -- generation ------------------------------------------------------

    @property
    def max_streams(self) -> int:
        return MAX_STREAMS

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        """The reply as it streams; closing the stream closes the connection, which stops
        the server's generation."""
        stats = GenerationStats(finish_reason="cancelled")
        self._stats = stats
        return TextStream(self._generate(prompt, sampling, stats), stats)

    def _generate(
        self, prompt: PromptSpec, sampling: SamplingParams, stats: GenerationStats
    ) -> Iterator[str]:
        chat = bool(prompt.messages)
        body = _wire(request_for(self.model_name, self.settings.n_ctx, prompt, sampling))
        reply = _ReplyState(stats, time.perf_counter(), chat=chat, source=self._source)
        path = "/chat/completions" if chat else "/completions"
        try:
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response.status_code, response.content, self._source)
                for payload in _sse_payloads(response.iter_lines()):
                    yield from reply.feed(payload)
                yield from reply.finish()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        finally:
            reply.close()

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token)."""
        return max(1, len(text) // _CHARS_PER_TOKEN) if text else 0

    def token_text(self, token_id: int) -> str:
        return ""

    def close(self) -> None:
        self._client.close()


def request_for(
    model_name: str, n_ctx: int | None, prompt: PromptSpec, sampling: SamplingParams
) -> ChatCompletionRequest | CompletionRequest:
    """The request for this prompt, checked by the rules the server applies (every stop
    string is sent; one over the limits is refused here, never dropped)."""
    fields: dict[str, Any] = {
        "model": model_name,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens or None,
        "seed": sampling.seed,
        "stop": list(prompt.stop_strings) or None,
        "presence_penalty": sampling.presence_penalty or None,
        "frequency_penalty": sampling.frequency_penalty or None,
        "num_ctx": n_ctx,  # localchat and Ollama honour it
    }
    if prompt.messages:
        messages = to_openai_messages(prompt.messages)
        structured = {
            **_response_format(prompt.reply_format),
            **_tools(prompt.tool_use),
        }
        return validate(ChatCompletionRequest, {**fields, **structured, "messages": messages})
    return validate(CompletionRequest, {**fields, "prompt": prompt.text})


def _response_format(reply_format: ReplyFormat | None) -> dict[str, Any]:
    if reply_format is None:
        return {}
    if reply_format.schema is None:
        return {"response_format": {"type": "json_object"}}
    schema = {"name": reply_format.name, "schema": dict(reply_format.schema), "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


def _tools(tool_use: ToolUse | None) -> dict[str, Any]:
    if tool_use is None or not tool_use.tools:
        return {}
    tools = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description or None,
                "parameters": dict(tool.parameters) or None,
            },
        }
        for tool in tool_use.tools
    ]
    choice: Any = tool_use.choice
    if tool_use.function is not None:
        choice = {"type": "function", "function": {"name": tool_use.function}}
    return {"tools": tools, "tool_choice": choice, "parallel_tool_calls": tool_use.parallel}


def _wire(body: BaseModel) -> Any:
    """A request model as the JSON it is sent as: unset optional fields left out."""
    return body.model_dump(mode="json", exclude_none=True, by_alias=True)


class _ReplyState:
    """Turns streamed chunks into text pieces and fills the stats."""

    def __init__(
        self, stats: GenerationStats, started: float, *, chat: bool = True, source: str = ""
    ) -> None:
        self.stats = stats
        self.started = started
        self.chat = chat
        self.source = source
        self.first_at: float | None = None
        self.last_at = started
        self.pieces = 0
        self.thinking_open = False
        self.server_tok_s: float | None = None
        self.usage_seen = False
        self.calls: dict[int, dict[str, str]] = {}  # index -> name, arguments so far

    def feed(self, payload: str) -> Iterator[str]:
        if payload == "[DONE]":
            return
        data = self._json_object(payload)
        if "error" in data:
            raise error_from_stream(data["error"], self.source)
        if self.chat:
            yield from self._chat_chunk(self._read(ChatCompletionChunk, data, payload))
        else:
            yield from self._text_chunk(self._read(CompletionResponse, data, payload))

    def _chat_chunk(self, chunk: ChatCompletionChunk) -> Iterator[str]:
        self._read_usage(chunk.usage, chunk.timings)
        for choice in chunk.choices:
            reasoning = choice.delta.reasoning_text()
            if reasoning:
                yield from self._piece(("" if self.thinking_open else "<thinking>") + reasoning)
                self.thinking_open = True
            if choice.delta.content:
                yield from self._piece(self._close_thinking() + choice.delta.content)
            self._read_calls(choice.delta.tool_calls or ())
            self._read_finish(choice.finish_reason)

    def _read_calls(self, deltas: Sequence[ToolCallDelta]) -> None:
        for delta in deltas:
            call = self.calls.setdefault(delta.index, {"name": "", "arguments": ""})
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""

    def _text_chunk(self, chunk: CompletionResponse) -> Iterator[str]:
        self._read_usage(chunk.usage, chunk.timings)
        for choice in chunk.choices:
            if choice.text:
                yield from self._piece(choice.text)
            self._read_finish(choice.finish_reason)

    def _read_finish(self, reason: str | None) -> None:
        if reason:
            self.stats.finish_reason = reason

    def finish(self) -> Iterator[str]:
        closing = self._close_thinking()
        if closing:
            yield closing
        for _, call in sorted(self.calls.items()):
            block = json.dumps(call, ensure_ascii=False)
            yield from self._piece(f"<tool_call>{block}</tool_call>")
        if self.stats.finish_reason == "tool_calls":
            self.stats.finish_reason = "stop"
        if self.stats.finish_reason == "cancelled":
            self.stats.finish_reason = "stop"

    def _piece(self, text: str) -> Iterator[str]:
        now = time.perf_counter()
        if self.first_at is None:
            self.first_at = now
            self.stats.time_to_first_token_s = now - self.started
        self.last_at = now
        self.pieces += 1
        yield text

    def _close_thinking(self) -> str:
        if not self.thinking_open:
            return ""
        self.thinking_open = False
        return "</thinking>"

    def _read_usage(self, usage: Usage | None, timings: Timings | None) -> None:
        if usage is not None:
            self.usage_seen = True
            self.stats.prompt_tokens = usage.prompt_tokens
            self.stats.completion_tokens = usage.completion_tokens
        if timings is not None and timings.predicted_per_second:
            self.server_tok_s = timings.predicted_per_second

    def close(self) -> None:
        stats = self.stats
        stats.total_s = time.perf_counter() - self.started
        if not self.usage_seen:
            stats.completion_tokens = self.pieces
        decode_s = self.last_at - (self.first_at or self.last_at)
        stats.decode_tokens_per_s = self.server_tok_s or decode_rate(
            stats.completion_tokens, decode_s
        )

    def _json_object(self, payload: str) -> dict[str, Any]:
        try:
            value = parse_json(payload, "a streamed chunk")
        except InvalidRequest as exc:
            raise RemoteEngineError(
                f"the engine sent a chunk that is not JSON: {payload[:80]!r}"
            ) from exc
        if not isinstance(value, dict):
            raise RemoteEngineError(f"the engine sent an unexpected chunk: {payload[:80]!r}")
        return value

    def _read(self, shape: type[ReplyT], data: dict[str, Any], payload: str) -> ReplyT:
        try:
            return validate(shape, data)
        except InvalidRequest as exc:
            raise RemoteEngineError(
                f"the engine sent an unexpected chunk ({exc.message}): {payload[:80]!r}"
            ) from exc


def _sse_payloads(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()
