"""The remote backend: a model served by an OpenAI-compatible server.

vLLM, llama-server, ``python -m llama_cpp.server``, LM Studio, Ollama or another
``localchat serve``: the prompt's messages go to ``/chat/completions`` (the server
applies its own chat template), a raw prompt to ``/completions``; the reply streams
back as server-sent events.  Stats come from the server's ``usage`` (and llama.cpp's
``timings`` when sent), time to first token from the client's clock.  A reasoning
model's ``reasoning_content`` is wrapped in ``<thinking>`` tags, so the same reply
parser that splits Reflection's replies keeps it apart from the answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from localchat.engine.decode import decode_rate
from localchat.engine.settings import RemoteSettings
from localchat.errors import (
    DoesNotFit,
    InvalidRequest,
    LocalchatError,
    ModelNotFound,
    RemoteEngineError,
    ServerBusy,
    Unauthorized,
)
from localchat.types import (
    GenerationStats,
    LoadReport,
    PromptSpec,
    SamplingParams,
    TextStream,
)

_ERROR_BY_CODE: dict[str, type[LocalchatError]] = {
    "model_not_found": ModelNotFound,
    "model_does_not_fit": DoesNotFit,
    "server_busy": ServerBusy,
    "invalid_api_key": Unauthorized,
}
_ERROR_BY_STATUS: dict[int, type[LocalchatError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: ModelNotFound,
    422: InvalidRequest,
    429: ServerBusy,
    503: ServerBusy,
}
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
        """Ask a localchat server to load the model now (Ollama's empty /api/generate)."""
        body: dict[str, Any] = {"model": self.settings.model}
        if self.settings.n_ctx:
            body["options"] = {"num_ctx": self.settings.n_ctx}
        root = self.settings.base_url.rstrip("/").removesuffix("/v1")
        reply = self._request("POST", f"{root}/api/generate", json=body)
        return str(reply.get("model") or self.settings.model)

    def _pick_model(self) -> str:
        """The model's name as the server lists it; the first one when none was named."""
        listed = [str(m.get("id")) for m in self._request("GET", "/models").get("data") or []]
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

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.text, self.settings.base_url)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteEngineError(
                f"{self.settings.base_url} sent a reply that is not JSON"
            ) from exc

    def _unreachable(self, exc: httpx.HTTPError) -> RemoteEngineError:
        return RemoteEngineError(
            f"the engine at {self.settings.base_url} failed: {type(exc).__name__}: {exc}",
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
        path = "/chat/completions" if prompt.messages else "/completions"
        reply = _ReplyState(stats, time.perf_counter())
        try:
            with self._client.stream("POST", path, json=self._body(prompt, sampling)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(
                        response.status_code, response.text, self.settings.base_url
                    )
                for payload in _sse_payloads(response.iter_lines()):
                    yield from reply.feed(payload)
                yield from reply.finish()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        finally:
            reply.close()

    def _body(self, prompt: PromptSpec, sampling: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if prompt.messages:
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt.messages]
        else:
            body["prompt"] = prompt.text
        if sampling.max_tokens:
            body["max_tokens"] = sampling.max_tokens
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if prompt.stop_strings:
            body["stop"] = list(prompt.stop_strings)[:4]  # OpenAI's limit
        if self.settings.n_ctx:
            body["num_ctx"] = self.settings.n_ctx
        return body

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token)."""
        return max(1, len(text) // _CHARS_PER_TOKEN) if text else 0

    def token_text(self, token_id: int) -> str:
        return ""

    def close(self) -> None:
        self._client.close()


class _ReplyState:
    """Turns streamed chunks into text pieces and fills the stats."""

    def __init__(self, stats: GenerationStats, started: float) -> None:
        self.stats = stats
        self.started = started
        self.first_at: float | None = None
        self.last_at = started
        self.pieces = 0
        self.thinking_open = False
        self.server_tok_s: float | None = None
        self.usage_seen = False

    def feed(self, payload: str) -> Iterator[str]:
        if payload == "[DONE]":
            return
        chunk = _json_object(payload)
        if "error" in chunk:
            raise _stream_error(chunk["error"])
        self._read_usage(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            text = delta.get("content") if "delta" in choice else choice.get("text")
            if reasoning:
                yield from self._piece(("" if self.thinking_open else "<thinking>") + reasoning)
                self.thinking_open = True
            if text:
                yield from self._piece(self._close_thinking() + text)
            if choice.get("finish_reason"):
                self.stats.finish_reason = str(choice["finish_reason"])

    def finish(self) -> Iterator[str]:
        closing = self._close_thinking()
        if closing:
            yield closing
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

    def _read_usage(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage_seen = True
            self.stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens = int(usage.get("completion_tokens") or 0)
        timings = chunk.get("timings")
        if isinstance(timings, dict) and timings.get("predicted_per_second"):
            self.server_tok_s = float(timings["predicted_per_second"])

    def close(self) -> None:
        stats = self.stats
        stats.total_s = time.perf_counter() - self.started
        if not self.usage_seen:
            stats.completion_tokens = self.pieces
        decode_s = self.last_at - (self.first_at or self.last_at)
        stats.decode_tokens_per_s = self.server_tok_s or decode_rate(
            stats.completion_tokens, decode_s
        )


def _sse_payloads(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


def _json_object(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise RemoteEngineError(
            f"the engine sent a chunk that is not JSON: {payload[:80]!r}"
        ) from exc
    if not isinstance(value, dict):
        raise RemoteEngineError(f"the engine sent an unexpected chunk: {payload[:80]!r}")
    return value


def _stream_error(error: Any) -> LocalchatError:
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    return _ERROR_BY_CODE.get(str(code), RemoteEngineError)(f"the engine failed: {message}")


def error_from_response(status: int, body_text: str, base_url: str) -> LocalchatError:
    """A server's error reply (OpenAI's or Ollama's shape) as the matching localchat error."""
    message, code = body_text.strip()[:300], None
    try:
        body = json.loads(body_text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            message, code = str(error.get("message") or message), error.get("code")
        elif error:
            message = str(error)
    error_class = _ERROR_BY_CODE.get(str(code)) or _ERROR_BY_STATUS.get(status, RemoteEngineError)
    return error_class(f"{message} (HTTP {status} from {base_url})")
