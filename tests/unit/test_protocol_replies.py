"""``localchat.protocol``'s reply side: what ``localchat serve`` writes parses with the
official clients' own reply types (``openai``, ``ollama``), what other servers send is
read leniently, and the error table works in both directions (a localchat error sent by
the server comes back to a client as the same class, so the same exit code)."""

from __future__ import annotations

import json

import pytest

from localchat import errors
from localchat.protocol import ollama as ollama_wire
from localchat.protocol import ollama_models as ollama_models_wire
from localchat.protocol import openai as openai_wire
from localchat.protocol import validate
from localchat.protocol.errors import (
    ERROR_CODES,
    error_from_response,
    error_from_stream,
    http_status,
    ollama_error,
    openai_error,
)
from localchat.types import GenerationStats

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

STATS = GenerationStats(prompt_tokens=7, completion_tokens=3, time_to_first_token_s=0.2,
                        decode_tokens_per_s=30.0, total_s=0.5, finish_reason="length")  # fmt: skip


def _wire(model: object) -> dict:
    return json.loads(model.model_dump_json())  # type: ignore[attr-defined]


# -- errors, both directions -------------------------------------------------------------


@pytest.mark.parametrize(
    "error_class", [cls for cls in ERROR_CODES if issubclass(cls, errors.LocalchatError)]
)
def test_every_coded_error_comes_back_as_its_own_class(error_class: type) -> None:
    sent = error_class("it failed", hint="do this")
    body = openai_error(sent).model_dump_json()
    back = error_from_response(http_status(sent), body, "http://server")
    assert type(back) is error_class
    assert back.exit_code == sent.exit_code
    assert "it failed (do this)" in back.message and "HTTP" in back.message


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (404, '{"error": "model \\"x\\" not found, try pulling it first"}', errors.ModelNotFound),
        (400, '{"error": {"message": "bad", "type": "invalid_request_error", "code": 400}}',
         errors.InvalidRequest),
        (422, '{"detail": [{"loc": ["body"], "msg": "x"}]}', errors.InvalidRequest),
        (401, "{}", errors.Unauthorized),
        (429, "slow down", errors.ServerBusy),
        (503, "<html>busy</html>", errors.ServerBusy),
        (500, "oops", errors.RemoteEngineError),
        (502, "", errors.RemoteEngineError),
        (404, '{"error": {"message": "no", "code": "model_not_found"}}', errors.ModelNotFound),
    ],
)  # fmt: skip
def test_other_servers_errors_map_by_status(status: int, body: str, error_class: type) -> None:
    back = error_from_response(status, body)
    assert type(back) is error_class and "\n" not in back.message


def test_error_bodies_in_each_apis_shape() -> None:
    sent = errors.ServerBusy("queue full")
    assert _wire(openai_error(sent)) == {"error": {"message": "queue full", "type":
        "server_overloaded", "param": None, "code": "server_busy"}}  # fmt: skip
    assert _wire(ollama_error(sent)) == {"error": "queue full"}
    assert "secret" not in openai_error(RuntimeError("secret")).error.message
    assert http_status(errors.WorkerUnavailable("x")) == 500  # along the hierarchy
    assert isinstance(error_from_stream({"message": "m", "code": "server_busy"}), errors.ServerBusy)
    assert isinstance(error_from_stream("plain"), errors.RemoteEngineError)


# -- our replies parse with the official clients' own types ------------------------------


def test_openai_replies_parse_with_the_openai_sdk() -> None:
    from openai.types import Completion, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    usage = openai_wire.Usage.from_stats(STATS)
    message = openai_wire.AssistantMessage(content="Paris", reasoning_content="hmm")
    whole = openai_wire.ChatCompletionResponse(
        id="chatcmpl-1", created=1, model="m", usage=usage,
        choices=[openai_wire.ChatChoice(message=message, finish_reason="stop")],
    )  # fmt: skip
    parsed = ChatCompletion.model_validate(_wire(whole))
    assert parsed.choices[0].message.content == "Paris" and parsed.usage.total_tokens == 10
    delta = openai_wire.Delta(content="Pa")
    chunk = openai_wire.ChatCompletionChunk(
        id="c", created=1, model="m", choices=[openai_wire.ChunkChoice(delta=delta)]
    )
    assert _wire(chunk)["choices"][0] == {"index": 0, "delta": {"content": "Pa"},
                                          "finish_reason": None}  # fmt: skip
    assert ChatCompletionChunk.model_validate(_wire(chunk)).choices[0].delta.content == "Pa"
    usage_chunk = openai_wire.ChatCompletionChunk(id="c", created=1, model="m", usage=usage)
    assert ChatCompletionChunk.model_validate(_wire(usage_chunk)).usage.completion_tokens == 3
    text = openai_wire.CompletionResponse(
        id="cmpl-1", created=1, model="m", usage=usage,
        choices=[openai_wire.CompletionChoice(text="x", finish_reason="length")],
    )  # fmt: skip
    assert Completion.model_validate(_wire(text)).choices[0].finish_reason == "length"
    listed = openai_wire.ModelList(data=[openai_wire.ModelCard(id="gemma", created=5)])
    assert Model.model_validate(_wire(listed)["data"][0]).id == "gemma"


def test_ollama_replies_parse_with_the_ollama_client() -> None:
    last = ollama_wire.ChatReply(model="m").finished("stop", STATS, 1.0)
    parsed = ollama.ChatResponse.model_validate(_wire(last))
    assert parsed.done and parsed.eval_count == 3 and parsed.prompt_eval_count == 7
    assert parsed.message.role == "assistant"
    piece = ollama_wire.GenerateReply(model="m", response="a", thinking="t")
    assert ollama.GenerateResponse.model_validate(_wire(piece)).thinking == "t"
    assert "done_reason" not in _wire(piece)  # only the last line says why it ended
    details = ollama_models_wire.ModelDetails(format="gguf", quantization_level="Q4_K_M")
    tags = ollama_models_wire.TagsReply(models=[ollama_models_wire.ListedModel(
        name="m", model="m", modified_at=ollama_wire.iso_time(0), size=1, details=details)])  # fmt: skip
    assert ollama.ListResponse.model_validate(_wire(tags)).models[0].details.format == "gguf"
    running = ollama_models_wire.PsReply(models=[ollama_models_wire.RunningModel(
        name="m", model="m", expires_at=ollama_wire.iso_time(0), context_length=2048)])  # fmt: skip
    assert ollama.ProcessResponse.model_validate(_wire(running)).models[0].context_length == 2048
    shown = ollama_models_wire.ShowReply(details=details, capabilities=["completion"],
                                  model_info={"general.architecture": "gemma3"},
                                  modified_at=ollama_wire.iso_time(0))  # fmt: skip
    assert ollama.ShowResponse.model_validate(_wire(shown)).capabilities == ["completion"]
    progress = ollama_models_wire.PullProgress(status="pulling x", digest="x", total=9, completed=3)
    assert ollama.ProgressResponse.model_validate(_wire(progress)).completed == 3
    assert _wire(ollama_models_wire.PullProgress(status="success")) == {"status": "success"}


# -- other servers' replies are read leniently -------------------------------------------


def test_chunks_from_other_servers_are_read_leniently() -> None:
    llama_server = {"choices": [{"delta": {"content": "Hi", "tool_calls": None},
                                 "finish_reason": None, "index": 0, "logprobs": {"x": 1}}],
                    "object": "chat.completion.chunk", "system_fingerprint": "b1",
                    "timings": {"predicted_per_second": 41.5, "cache_n": 3}}  # fmt: skip
    chunk = validate(openai_wire.ChatCompletionChunk, llama_server)
    assert chunk.choices[0].delta.content == "Hi" and chunk.id == ""
    assert chunk.timings is not None and chunk.timings.predicted_per_second == 41.5
    vllm = {"id": "x", "choices": [{"index": 0, "delta": {"reasoning": "think"}}]}
    assert validate(openai_wire.ChatCompletionChunk, vllm).choices[0].delta.reasoning_text() == (
        "think"
    )
    models = {"object": "list", "data": [{"id": "a", "meta": {"n_ctx": 1}}]}
    assert validate(openai_wire.ModelList, models).data[0].id == "a"
