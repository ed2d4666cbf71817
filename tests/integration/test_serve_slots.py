"""``localchat serve`` on the slot engine: many conversations at once, through the real
HTTP server, with the real gemma-3-270m and real clients (the ``openai`` SDK, httpx,
``localchat ask`` processes).

The server's settings.toml asks for 8 slots of 2560 tokens (``parallel``,
``context_size``) and no repetition guard (replies run to their budget).  What is
checked: 8 concurrent streams get their own text and really run side by side; closing
one client leaves the others' text unchanged; a ~2,000-token prompt arriving mid-stream
holds a running stream up for about one prefill chunk, not the whole prompt; ``n``
choices; 8 clients with long prompts never overflow the cache; llama.cpp's buffers for
the 8 slots are what ``localchat plan --parallel 8`` says; two ``ask`` processes against
the server stream side by side.

Batched decoding is not bit-identical to decoding alone (llama.cpp's kernels change
with the batch's shape), so texts are told apart by words their prompts make certain,
as in tests/integration/test_llama_slots.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.distinct_prompts import PROMPTS
from tests.fixtures.servers import RunningServer, server_home, start_localchat_server
from tests.integration.cli import localchat_env, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")

MODEL = "gemma-3-270m"
SLOTS = 8
CTX_PER_SLOT = 2560
N_BATCH = 512  # the planner's prefill chunk
MiB = 1 << 20
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_pip_models: Path, gemma_path: Path
) -> Iterator[RunningServer]:
    home = server_home(tmp_path_factory, shared_pip_models)
    (home / "config").mkdir()
    (home / "config" / "settings.toml").write_text(
        f"parallel = {SLOTS}\ncontext_size = {CTX_PER_SLOT}\nrepetition_guard = false\n"
    )
    yield from start_localchat_server(home, "--threads", "2", "--no-pull", "--max-queue", "64")


def _ps(server: RunningServer) -> dict:
    models = httpx.get(f"{server.base_url}/api/ps", timeout=10).json()["models"]
    assert len(models) == 1, models
    return dict(models[0])


def _wait_idle(server: RunningServer) -> dict:
    for _ in range(300):
        status = _ps(server)
        if status["localchat"]["busy"] == 0:
            return status
        time.sleep(0.1)
    raise AssertionError(f"the model is still busy: {status}")


async def _stream_text(
    client: openai.AsyncOpenAI, prompt: str, max_tokens: int, times: list[float] | None = None
) -> str:
    stream = await client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True
    )
    pieces = []
    async for chunk in stream:
        if times is not None:
            times.append(time.perf_counter())
        pieces.extend(choice.text for choice in chunk.choices)
    return "".join(pieces)


def _client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="-", max_retries=0)


def test_eight_concurrent_streams_get_their_own_text(server: RunningServer) -> None:
    async def run() -> tuple[list[str], list[list[float]]]:
        times: list[list[float]] = [[] for _ in PROMPTS]
        async with _client(server) as client:
            texts = await asyncio.gather(
                *(_stream_text(client, p, 24, times[i]) for i, p in enumerate(PROMPTS))
            )
        return list(texts), times

    texts, times = asyncio.run(run())
    for (prompt, word), text in zip(PROMPTS.items(), texts, strict=True):
        assert word in text, (prompt, text)
        others = [w for p, w in PROMPTS.items() if p != prompt and len(w) > 2]
        assert not any(w in text for w in others), (prompt, text)
    # side by side, not in turn: every stream had its first piece before any ended
    assert max(t[0] for t in times) < min(t[-1] for t in times)
    status = _wait_idle(server)
    assert status["localchat"]["slots"] == SLOTS and status["context_length"] == CTX_PER_SLOT


def test_closing_one_client_leaves_the_others_text_unchanged(server: RunningServer) -> None:
    # sequences the model continues with confidence: the batch changing shape when the
    # victim leaves cannot tip them, a damaged cache or crossed slots would
    prompts = ["1, 2, 3, 4, 5,", "A, B, C, D, E,", "January, February, March,", "10, 20, 30,"]
    cancelled_before = _ps(server)["localchat"]["cancelled"]

    async def victim(client: httpx.AsyncClient) -> str:
        body = {"model": MODEL, "prompt": prompts[1], "max_tokens": 200, "stream": True,
                "temperature": 0}  # fmt: skip
        async with client.stream("POST", f"{server.base_url}/v1/completions", json=body) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data:") and '"text":""' not in line.replace(" ", ""):
                    return line  # the connection closes here, mid-stream
        raise AssertionError("the victim's stream ended before its first piece")

    async def run(with_victim: bool) -> list[str]:
        async with _client(server) as client, httpx.AsyncClient(timeout=60) as raw:
            kept = [_stream_text(client, p, 16) for i, p in enumerate(prompts) if i != 1]
            others = [victim(raw)] if with_victim else [_stream_text(client, prompts[1], 16)]
            results = await asyncio.gather(*kept, *others)
        return list(results[:-1])

    reference = asyncio.run(run(with_victim=False))
    assert reference[0].startswith(" 6, 7, 8") and reference[1].startswith(" April, May")
    assert asyncio.run(run(with_victim=True)) == reference
    status = _wait_idle(server)  # the victim's slot was freed too
    assert status["localchat"]["cancelled"] == cancelled_before + 1


def _long_prompt(n_lines: int = 125) -> str:  # about 17 tokens a line
    return "".join(
        f"Line {i}: the keeper lit the lamp and watched the sea.\n" for i in range(n_lines)
    )


def test_a_long_prompt_mid_stream_holds_a_running_stream_up_for_about_one_chunk(
    server: RunningServer,
) -> None:
    arrivals: list[float] = []
    long_done = threading.Event()
    long_reply: dict = {}

    def run_long() -> None:
        body = {"model": MODEL, "prompt": _long_prompt(), "max_tokens": 1, "temperature": 0}
        started = time.perf_counter()
        reply = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=300)
        ended = time.perf_counter()
        long_reply.update(reply.json(), wall_s=ended - started, started=started, ended=ended)
        long_done.set()

    body = {"model": MODEL, "prompt": COUNTING, "max_tokens": 1000, "stream": True,
            "temperature": 0}  # fmt: skip
    long_thread = threading.Thread(target=run_long)
    with httpx.stream(
        "POST", f"{server.base_url}/v1/completions", json=body, timeout=120
    ) as running:
        for line in running.iter_lines():
            if not line.startswith("data:"):
                continue
            arrivals.append(time.perf_counter())
            if len(arrivals) == 8:  # mid-stream: the long prompt arrives
                long_thread.start()
            if long_done.is_set() and arrivals[-1] > long_reply["ended"]:
                break  # the running stream went on after the long prompt's reply
    long_thread.join(timeout=300)
    n_long = long_reply["usage"]["prompt_tokens"]
    assert 1800 < n_long < CTX_PER_SLOT, n_long
    n_chunks = -(-n_long // N_BATCH)
    chunk_s = long_reply["wall_s"] / n_chunks  # one prefill step, as the long request saw it
    during = [t for t in arrivals if t >= long_reply["started"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    print(
        f"{n_long}-token prompt: {long_reply['wall_s']:.2f} s in {n_chunks} chunks of "
        f"{N_BATCH} ({chunk_s:.2f} s each); the running stream's longest gap {max(gaps):.2f} s"
    )
    # one chunk (plus the stream's own token) per step, never the whole prompt at once
    assert max(gaps) < 2 * chunk_s < n_chunks * chunk_s


def test_n_choices_share_a_request(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="-", max_retries=0)
    one = client.completions.create(model=MODEL, prompt=COUNTING, max_tokens=6, temperature=0)
    three = client.completions.create(
        model=MODEL, prompt=COUNTING, max_tokens=6, temperature=0, n=3
    )
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" for c in three.choices)
    # the prompt is counted once, every choice's tokens are
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    greedy = [c.text for c in three.choices]
    assert greedy[0].startswith(one.choices[0].text[:3])
    messages = [{"role": "user", "content": "Write one word about the sea."}]
    sampled = client.chat.completions.create(
        model=MODEL, messages=messages, n=3, temperature=1.0, seed=11, max_tokens=12
    )
    texts = [c.message.content for c in sampled.choices]
    print(f"n=3 at temperature 0: {greedy}; at temperature 1, seed 11: {texts}")
    assert len(texts) == 3 and len(set(texts)) > 1  # seeds 11, 12, 13 (one may end at once)
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, n=3, temperature=1.0, seed=11, max_tokens=12, stream=True
    )
    streamed, finished = ["", "", ""], set()
    for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1, 2} and len(set(streamed)) > 1
    counted = client.completions.create(
        model=MODEL, prompt=COUNTING, max_tokens=6, temperature=0, n=3, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    usage = [chunk.usage for chunk in counted if chunk.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 3 * one.usage.completion_tokens
    assert usage[0].prompt_tokens == one.usage.prompt_tokens
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=messages, n=9, max_tokens=2)
    assert caught.value.body["message"].startswith("n: at most 8 choices")


def test_the_slots_memory_is_what_plan_says(
    server: RunningServer, gemma_path: Path, localchat_home: Path
) -> None:
    """llama.cpp's buffers for the server's 8 slots against `localchat plan --parallel 8`
    (run in a fresh home, so no calibration from the server's load helps it); the
    targets of tests/integration/test_plan_accuracy.py."""
    from localchat.planner.calibration import parse_llama_log

    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 1, "num_ctx": CTX_PER_SLOT}
    httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=120).raise_for_status()
    log_text = (server.home / "logs" / "llama.log").read_text(errors="replace")
    assert f"n_seq_max             = {SLOTS}" in log_text
    logged = parse_llama_log(log_text)["devices"]["CPU"]
    planned = run_localchat(
        localchat_home, "plan", str(gemma_path), "--parallel", str(SLOTS),
        "--ctx", str(CTX_PER_SLOT), "--threads", "2", "--json",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["n_parallel"] == SLOTS and plan["n_ctx"] == SLOTS * CTX_PER_SLOT
    cpu = next(d for d in plan["devices"] if d["device"] == "CPU")
    where = f"planned {cpu}, logged {logged}"
    assert abs(cpu["weights"] - logged["weights"]) <= MiB, where
    assert abs(cpu["kv"] - logged["kv"]) <= MiB, where
    assert abs(cpu["compute"] - logged["compute"]) <= 0.10 * logged["compute"], where
    total_planned = cpu["weights"] + cpu["kv"] + cpu["compute"]
    assert abs(total_planned - sum(logged.values())) <= 0.03 * sum(logged.values()), where


def test_eight_clients_with_long_prompts_never_overflow_the_cache(server: RunningServer) -> None:
    """Each prompt nearly fills its slot and asks for far more than is left: every reply
    runs exactly to its slot's end, and a prompt longer than a slot is a 400.  (Slots of
    640 tokens, ``num_ctx``: the same rule as 2560, at a price a shared CPU can pay.)"""
    n_ctx = 640
    prompts = [f"Story {n}.\n" + _long_prompt(33) for n in range(SLOTS)]

    async def run() -> list[httpx.Response]:
        url = f"{server.base_url}/v1/completions"
        ask = {"model": MODEL, "max_tokens": 2000, "temperature": 0, "num_ctx": n_ctx}
        async with httpx.AsyncClient(timeout=600) as client:
            return await asyncio.gather(
                *(client.post(url, json={**ask, "prompt": p}) for p in prompts)
            )

    replies = asyncio.run(run())
    for reply in replies:
        assert reply.status_code == 200, reply.text
        usage = reply.json()["usage"]
        assert 500 < usage["prompt_tokens"] < n_ctx
        assert usage["prompt_tokens"] + usage["completion_tokens"] == n_ctx
        assert reply.json()["choices"][0]["finish_reason"] == "length"
    assert _ps(server)["context_length"] == n_ctx
    too_long = {"model": MODEL, "prompt": _long_prompt(45), "max_tokens": 4, "num_ctx": n_ctx}
    refused = httpx.post(f"{server.base_url}/v1/completions", json=too_long, timeout=120)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert f"the context holds {n_ctx}" in error["message"]
    _wait_idle(server)


def test_two_asks_at_once_stream_side_by_side(server: RunningServer) -> None:
    """Two `localchat ask` processes against the server: both start streaming before
    either finishes (they no longer queue behind one another)."""
    env = localchat_env(server.home, LOCALCHAT_HOST=f"127.0.0.1:{server.port}")  # type: ignore[arg-type]
    command = [sys.executable, "-m", "localchat", "ask", "-m", MODEL, "--temperature", "0",
               "--max-tokens", "120"]  # fmt: skip
    marks: list[dict[str, float]] = [{}, {}]

    def run(index: int, prompt: str) -> None:
        process = subprocess.Popen(
            [*command, prompt], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        first = process.stdout.read(1)
        marks[index]["first"] = time.perf_counter()
        rest = process.stdout.read()
        marks[index]["end"] = time.perf_counter()
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
        marks[index]["text_chars"] = len(first + rest)

    threads = [
        threading.Thread(target=run, args=(i, p))
        for i, p in enumerate([f"Count: {COUNTING}", "List the months: January, February,"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all("end" in m and m["text_chars"] > 20 for m in marks), marks
    print(f"ask first bytes at {[round(m['first'] - marks[0]['first'], 2) for m in marks]} s, "
          f"ends at {[round(m['end'] - marks[0]['first'], 2) for m in marks]} s")  # fmt: skip
    assert max(m["first"] for m in marks) < min(m["end"] for m in marks)
