"""The server's and the remote engine's pure parts: durations, bind safety, the error map,
name checks, engine discovery, the model pool's policy, and the stream reader."""

from __future__ import annotations

import asyncio
import http.server
import os
import pathlib
import threading
from typing import Any

import pytest

from localchat import errors
from localchat.catalog import load_catalog
from localchat.engine import endpoints
from localchat.engine.remote_engine import _ReplyState
from localchat.protocol.errors import error_from_response, http_status, openai_error
from localchat.protocol.ollama import parse_duration_s
from localchat.reference import parse_model_ref
from localchat.server.config import ServerConfig, check_bind_safety
from localchat.server.pool import ModelPool
from localchat.types import GenerationStats
from tests.conftest import unused_port


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5m", 300.0), ("30s", 30.0), ("1h", 3600.0), ("500ms", 0.5), (0, 0.0), (-1, -1.0),
     ("-1", -1.0), ("90", 90.0), (None, 7.0), ("", 7.0)],
)  # fmt: skip
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration_s(value, 7.0) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "m", "1d", True])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(errors.ConfigError):
        parse_duration_s(value, 1.0)


def test_bind_safety() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind_safety(ServerConfig(host=host))
    with pytest.raises(errors.ConfigError, match="without an API key"):
        check_bind_safety(ServerConfig(host="0.0.0.0"))
    check_bind_safety(ServerConfig(host="0.0.0.0", api_key="k"))
    check_bind_safety(ServerConfig(host="0.0.0.0", insecure_no_api_key=True))


@pytest.mark.parametrize(
    ("error", "status"),
    [(errors.ModelNotFound("x"), 404), (errors.DoesNotFit("x"), 400),
     (errors.InvalidRequest("x"), 400), (errors.RequestTooLarge("x"), 413),
     (errors.Unauthorized("x"), 401), (errors.ServerBusy("x"), 503),
     (errors.AuthRequired("x"), 403), (errors.NotEnoughDisk("x"), 507),
     (errors.DownloadFailed("x"), 502), (errors.TemplateRejected("x"), 400),
     (errors.WorkerUnavailable("x"), 500), (errors.HistoryError("x"), 500),
     (errors.ContextOverflow("x"), 400), (errors.EngineError("x"), 500),
     (RuntimeError("bug"), 500)],
)  # fmt: skip
def test_statuses_follow_the_hierarchy(error: BaseException, status: int) -> None:
    assert http_status(error) == status


def test_openai_error_shape() -> None:
    body = openai_error(errors.ModelNotFound("unknown model 'x'", hint="see catalog")).model_dump()
    assert body == {
        "error": {
            "message": "unknown model 'x' (see catalog)",
            "type": "not_found_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    assert "bug" not in openai_error(RuntimeError("bug")).error.message


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "~/x", "x.gguf", "a/../b", ".hidden", "a b", "C:\\x"],
)
def test_names_from_the_network_never_touch_the_file_system(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = load_catalog()

    def no_fs(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file system was touched")

    monkeypatch.setattr(os, "stat", no_fs)
    monkeypatch.setattr(pathlib.Path, "exists", no_fs)
    with pytest.raises(errors.InvalidRequest, match="not a model name"):
        parse_model_ref(name, catalog, allow_paths=False)


def test_names_from_the_network_that_are_fine() -> None:
    catalog = load_catalog()
    assert parse_model_ref("gemma-3-270m:Q4_K_M", catalog, allow_paths=False).kind == "catalog"
    hub = parse_model_ref("hf.co/owner/Repo-GGUF:Q4_K_M", catalog, allow_paths=False)
    assert (hub.kind, hub.repo_id, hub.quant) == ("hub", "owner/Repo-GGUF", "Q4_K_M")


# -- engine discovery --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [("127.0.0.1:9000", ("127.0.0.1", 9000)), ("http://box:8080", ("box", 8080)),
     ("box", ("box", 11435)), ("off", None), ("none", None)],
)  # fmt: skip
def test_server_address(value: str, address: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCHAT_HOST", value)
    assert endpoints.server_address() == address


def test_default_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALCHAT_HOST")
    assert endpoints.server_address() == ("127.0.0.1", 11435)


def test_engine_urls() -> None:
    assert endpoints.normalize_engine_url("http://gpu:8000") == "http://gpu:8000/v1"
    assert endpoints.normalize_engine_url("http://gpu:8000/v1/") == "http://gpu:8000/v1"
    with pytest.raises(errors.ConfigError):
        endpoints.normalize_engine_url("gpu:8000")


def test_which_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest points LOCALCHAT_HOST at a port nothing listens on: in-process
    assert endpoints.remote_settings("gemma-3-270m") is None
    explicit = endpoints.remote_settings("m", engine="http://gpu:8000", api_key="k")
    assert (explicit.base_url, explicit.model, explicit.api_key) == ("http://gpu:8000/v1", "m", "k")
    assert not explicit.is_localchat
    monkeypatch.setenv("LOCALCHAT_ENGINE", "http://env:1234")
    assert endpoints.remote_settings(None).base_url == "http://env:1234/v1"
    assert endpoints.remote_settings(None, local=True) is None  # --local ignores the env


def test_a_server_that_is_not_localchat_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("LOCALCHAT_HOST", f"127.0.0.1:{server.server_address[1]}")
        assert endpoints.running_server() is None
        monkeypatch.setenv("LOCALCHAT_HOST", f"127.0.0.1:{unused_port()}")
        assert endpoints.running_server() is None
    finally:
        server.shutdown()
        server.server_close()


# -- the remote backend's stream reader ----------------------------------------


def test_reasoning_is_wrapped_as_thinking_and_usage_read() -> None:
    stats = GenerationStats()
    reply = _ReplyState(stats, 0.0)
    chunks = [
        '{"choices": [{"delta": {"reasoning_content": "let me"}}]}',
        '{"choices": [{"delta": {"reasoning_content": " think"}}]}',
        '{"choices": [{"delta": {"content": "Paris"}, "finish_reason": "stop"}]}',
        '{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}',
        "[DONE]",
    ]
    text = "".join(piece for chunk in chunks for piece in reply.feed(chunk))
    text += "".join(reply.finish())
    reply.close()
    assert text == "<thinking>let me think</thinking>Paris"
    assert (stats.prompt_tokens, stats.completion_tokens, stats.finish_reason) == (5, 3, "stop")
    assert stats.time_to_first_token_s is not None


def test_error_chunks_and_replies_map_back() -> None:
    reply = _ReplyState(GenerationStats(), 0.0)
    with pytest.raises(errors.ServerBusy):
        list(reply.feed('{"error": {"message": "busy", "code": "server_busy"}}'))
    body = '{"error": {"message": "no such model", "code": "model_not_found"}}'
    assert isinstance(error_from_response(404, body, "u"), errors.ModelNotFound)
    assert isinstance(
        error_from_response(400, '{"error": "x", "code": null}', "u"), errors.InvalidRequest
    )
    assert isinstance(error_from_response(500, "oops", "u"), errors.RemoteEngineError)
    assert isinstance(error_from_response(401, "{}", "u"), errors.Unauthorized)
    too_long = '{"error": {"message": "the prompt is 9 tokens", "code": "context_length_exceeded"}}'
    overflow = error_from_response(400, too_long, "u")
    assert isinstance(overflow, errors.ContextOverflow) and overflow.exit_code == 7  # as --local


# -- the pool's policy ---------------------------------------------------------
# A stub opener stands in for memory pressure, which cannot be made to order here;
# the pool itself (LRU, busy, keep-alive) is the real code.


class _StubModel:
    def __init__(self, name: str, max_streams: int = 1) -> None:
        self.name = name
        self.closed = False
        self.engine_label = "stub"
        self.max_streams = max_streams  # its slots
        self.n_ctx = 2048
        self.slots_reason = ""

    def close(self) -> None:
        self.closed = True


class _Opener:
    def __init__(self, fits: int, slots: int = 1) -> None:
        self.fits = fits  # how many models fit at once
        self.slots = slots  # streams each model runs at once
        self.open_models: list[_StubModel] = []

    def __call__(self, ref: Any, n_ctx: int | None) -> _StubModel:
        self.open_models = [m for m in self.open_models if not m.closed]
        if len(self.open_models) >= self.fits:
            raise errors.DoesNotFit(f"{ref.text} does not fit")
        model = _StubModel(ref.text, self.slots)
        self.open_models.append(model)
        return model


def _ref(name: str) -> Any:
    return parse_model_ref(name, load_catalog(), allow_paths=False)


def test_pool_unloads_the_least_recently_used_idle_model_when_the_next_does_not_fit() -> None:
    async def run() -> None:
        opener = _Opener(fits=2)
        pool = ModelPool(ServerConfig(max_loaded_models=5), opener)
        first = await pool.entry_for(_ref("a/one"), None)
        pool.release(first, None)
        second = await pool.entry_for(_ref("a/two"), None)
        pool.release(second, None)
        first_again = await pool.entry_for(_ref("a/one"), None)  # now "two" is the LRU
        pool.release(first_again, None)
        third = await pool.entry_for(_ref("a/three"), None)
        assert [e.name for e in pool.entries] == ["a/one", "a/three"]
        assert second.model.closed and not first.model.closed
        # every loaded model busy: the next one is a 503, not an unload
        busy = await pool.entry_for(_ref("a/one"), None)
        with pytest.raises(errors.ServerBusy):
            await pool.entry_for(_ref("a/four"), None)
        pool.release(busy, None)
        pool.release(third, None)
        await pool.close()

    asyncio.run(run())


def test_pool_keep_alive_zero_unloads_after_the_request() -> None:
    async def run() -> None:
        pool = ModelPool(ServerConfig(), _Opener(fits=3))
        entry = await pool.entry_for(_ref("a/one"), None)
        pool.release(entry, 0.0)
        for _ in range(500):  # the unload task closes it on a worker thread
            if entry.model.closed:
                break
            await asyncio.sleep(0.01)
        assert pool.entries == [] and entry.model.closed
        kept = await pool.entry_for(_ref("a/two"), None)
        pool.release(kept, -1)  # forever
        await pool.reap()
        assert pool.entries == [kept]
        await pool.close()

    asyncio.run(run())


def test_pool_bounded_queue() -> None:
    async def run() -> None:
        pool = ModelPool(ServerConfig(max_queue_per_model=1), _Opener(fits=1))
        entry = await pool.entry_for(_ref("a/one"), None)
        await entry.streams.acquire(1)  # a generation is running
        waiter = asyncio.create_task(entry.streams.acquire(1))  # and one request waits
        await asyncio.sleep(0)
        assert entry.waiting == 1 and entry.busy == 1
        with pytest.raises(errors.ServerBusy, match="already waiting"):
            await anext(pool.generate(entry, lambda model: []))
        entry.streams.release(1)
        await waiter
        entry.streams.release(1)
        await pool.close()

    asyncio.run(run())


# -- replies and the request log -------------------------------------------------------


def test_think_false_leaves_the_thinking_out() -> None:
    from localchat.protocol.ollama import ChatReply, GenerateReply
    from localchat.server.ollama_api import _Lines

    assert _Lines(ChatReply, "m", thinking=True).line("a", "r").message.thinking == "r"
    assert _Lines(ChatReply, "m", thinking=False).line("a", "r").message.thinking is None
    assert _Lines(GenerateReply, "m", thinking=False).line("a", "r").thinking is None


def test_a_request_log_line_is_one_line_whatever_the_client_sent() -> None:
    from localchat.server.request_log import RequestRecord, log_line

    scope = {"method": "POST", "path": "/api/chat\nFAKE 200 line"}
    record = RequestRecord(model="evil\r\nmodel " + "x" * 500, prompt_tokens=3, completion_tokens=4)
    line = log_line(scope, 200, 1.23456, record)
    assert "\n" not in line and "\r" not in line and len(line) < 400
    assert line.startswith("POST /api/chat\\nFAKE\\x20200\\x20line 200 1.235s model=evil\\r\\n")
    assert line.endswith("prompt_tokens=3 completion_tokens=4")
    assert log_line({"method": "GET", "path": "/"}, 401, 0.0, RequestRecord()) == "GET / 401 0.000s"


def test_the_in_flight_limit_counts_requests_and_frees_its_slot() -> None:
    """A stub app stands for a slow request; the limit itself is the real middleware."""
    import httpx
    from starlette.responses import PlainTextResponse

    from localchat.server.middleware import InFlightLimit

    async def run() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_app(scope: Any, receive: Any, send: Any) -> None:
            started.set()
            await release.wait()
            await PlainTextResponse("ok")(scope, receive, send)

        transport = httpx.ASGITransport(app=InFlightLimit(slow_app, ServerConfig(max_requests=1)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = asyncio.create_task(client.get("/v1/models"))
            await started.wait()
            refused = await client.get("/v1/models")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_busy"
            assert (await client.get("/api/tags")).json() == {"error": refused.json()["error"][
                "message"]}  # fmt: skip
            release.set()
            assert (await first).status_code == 200
            assert (await client.get("/api/tags")).status_code == 200  # the slot is free

    asyncio.run(run())
