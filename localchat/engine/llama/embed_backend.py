"""The llama.cpp backend of an embedding model: the model and one embedding context.

Loaded as the GGUF format's backend for ``LlamaEmbedSettings`` (``engine.embedding``):
the planner's context is the longest input, read whole in one batch; no generation
context, no decode thread.  A chat or completion asks it for text and gets an
``InvalidRequest`` saying it is an embedding model.
"""

from __future__ import annotations

import time
from functools import partial

from localchat.engine.embedding import LlamaEmbedSettings, not_a_chat_model
from localchat.engine.interrupt import begin_load, loads_cancelled, run_interruptibly
from localchat.engine.llama.embed import LlamaEmbedder, embedding_context_params
from localchat.engine.llama.loader import RetryLayers, context_params, model_params
from localchat.engine.probe import check_first_load
from localchat.errors import EngineError, Interrupted
from localchat.llamacpp import library
from localchat.llamacpp.model import LlamaModel, LoadFailed
from localchat.types import GenerationStats, LoadReport, PromptSpec, SamplingParams, TextStream


class LlamaEmbedBackend:
    """One embedding model loaded in llama.cpp; kept loaded until ``close()``."""

    def __init__(self, settings: LlamaEmbedSettings, retry: RetryLayers | None = None) -> None:
        self.load_report = LoadReport()
        self.settings = settings
        begin_load()
        check_first_load(settings.model_path)  # a llama.cpp abort kills a child, not us
        self._model, self._embedder = _load_with_report(settings, self.load_report)
        self._closed = False

    @property
    def n_ctx(self) -> int:
        """The longest input, in tokens."""
        return self._embedder.max_tokens

    @property
    def max_streams(self) -> int:
        return 1

    @property
    def last_stats(self) -> GenerationStats:
        return GenerationStats()

    def embedder(self) -> LlamaEmbedder:
        if self._closed:
            raise EngineError("the model was closed")
        return self._embedder

    def stream(self, prompt: PromptSpec, sampling: SamplingParams) -> TextStream:
        raise not_a_chat_model(self.settings.model_path.name)

    def count_tokens(self, text: str) -> int:
        return len(self._open_model().tokenize(text, add_special=False))

    def token_text(self, token_id: int) -> str:
        return self._open_model().piece(token_id, special=True).decode("utf-8", errors="replace")

    def _open_model(self) -> LlamaModel:
        if self._closed:
            raise EngineError("the model was closed")
        return self._model

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._embedder.close()  # waits for a batch in flight; the context goes first
            self._model.close()


def _load_with_report(
    settings: LlamaEmbedSettings, report: LoadReport
) -> tuple[LlamaModel, LlamaEmbedder]:
    """Load the model and its embedding context, capturing llama.cpp's log as the report."""
    log = library().log
    started = time.perf_counter()
    with log.capture() as log_lines:
        try:
            loaded = run_interruptibly(partial(_load, settings))
        except LoadFailed as exc:
            if loads_cancelled():
                raise Interrupted("loading was cancelled") from exc
            raise _load_error(settings, "".join(log_lines)) from exc
    report.load_s = time.perf_counter() - started
    report.log_text = "".join(log_lines)
    return loaded


def _load(settings: LlamaEmbedSettings) -> tuple[LlamaModel, LlamaEmbedder]:
    native = library().native
    native.install_abort_handler()
    model = LlamaModel(native, settings.model_path, model_params(settings))
    try:
        params = embedding_context_params(
            context_params(settings), settings.n_ctx, settings.pooling
        )
        return model, LlamaEmbedder(model, params)
    except BaseException:
        model.close()
        raise


def _load_error(settings: LlamaEmbedSettings, log_text: str) -> EngineError:
    last_error = next(
        (line.strip() for line in reversed(log_text.splitlines()) if "error" in line.lower()), ""
    )
    detail = f": {last_error}" if last_error else ""
    return EngineError(
        f"llama.cpp could not load the embedding model {settings.model_path.name}{detail}",
        hint="see the log with `localchat doctor`, or try a smaller --ctx",
    )
