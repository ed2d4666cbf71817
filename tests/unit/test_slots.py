"""Slots above the engine: ``--parallel`` in settings and on the command line, the
planner's ``--parallel auto``, and the server's admission of requests to a model's
streams (arrival order, ``n`` choices, cancellation) over the real pool and thread bridge.

The engine itself (real llama.cpp slots) is tested in tests/integration/test_llama_slots.py
and through the HTTP server in tests/integration/test_serve_slots.py.  Here a stub model
stands in for it where the pool's policy is under test: its streams are plain iterators
that block on an event, so which requests run at once is decided by the pool alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from localchat import errors
from localchat.catalog import load_catalog
from localchat.cli.plan_cmd import plan as plan_command
from localchat.gguf import read_gguf
from localchat.planner import PlanRequest, plan_for_file, plan_model, what_if_hardware
from localchat.planner.awq import ONE_SLOT_REASON, AwqFigures, plan_awq
from localchat.planner.slots import MIN_AGGREGATE_GAIN
from localchat.reference import parse_model_ref
from localchat.server.admission import StreamSlots
from localchat.server.blocking_stream import Finished
from localchat.server.config import ServerConfig
from localchat.server.pool import ModelPool
from localchat.settings import Settings, load_settings, parse_parallel
from localchat.types import GenerationStats, TextStream
from tests.fixtures.gguf_files import llama70b_spec, write_gguf

GiB = 1 << 30
CPU_BOX = {"ram": "16GiB", "cpu_only": True}

# -- settings and the option ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"), [("auto", "auto"), ("AUTO", "auto"), (4, 4), ("8", 8), (256, 256)]
)
def test_parallel_values(value: int | str, parsed: int | str) -> None:
    assert parse_parallel(value) == parsed


@pytest.mark.parametrize("value", [0, -1, 257, "", "four", "2.5", True])
def test_bad_parallel_values_are_config_errors(value: Any) -> None:
    with pytest.raises(errors.ConfigError, match="parallel must be 'auto' or a slot count"):
        parse_parallel(value)


def test_parallel_in_settings_toml(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('parallel = "4"\n')
    assert load_settings(path).parallel == 4  # normalised: serve gets a count
    path.write_text("parallel = 0\n")
    with pytest.raises(errors.ConfigError, match="parallel must be"):
        load_settings(path)
    path.write_text("parallel = true\n")
    with pytest.raises(errors.ConfigError, match="parallel must be int or str"):
        load_settings(path)
    assert Settings().parallel is None  # unset: serve chooses (auto)


# -- the planner's --parallel auto ---------------------------------------------


def _plan(path: Path, **request: Any) -> Any:
    hardware = what_if_hardware(**CPU_BOX)
    return plan_for_file(path, hardware, request=PlanRequest(calibrate_speed=False, **request))


def test_auto_adds_slots_to_the_single_stream_plan(gemma_path: Path) -> None:
    single = _plan(gemma_path)
    auto = _plan(gemma_path, parallel_auto=True)
    slots = auto.n_parallel
    assert slots in (2, 4, 8), auto.reasons
    assert (auto.quant, auto.n_gpu_layers) == (single.quant, single.n_gpu_layers)
    assert auto.n_ctx == slots * single.n_ctx  # each slot keeps the single stream's context
    assert auto.parallel_reason.startswith(f"--parallel auto: {slots} slots of {single.n_ctx}")
    assert auto.parallel_reason in auto.reasons
    # `plan --parallel N` costs exactly what auto chose (what `serve` then loads)
    named = _plan(gemma_path, n_parallel=slots, n_ctx=single.n_ctx)
    assert named.devices == auto.devices and named.n_ctx == auto.n_ctx
    assert named.predicted_tok_s == pytest.approx(auto.predicted_tok_s)
    # the rules held for the count chosen, and the next doubling broke one of them
    half = _plan(gemma_path, n_parallel=slots // 2, n_ctx=single.n_ctx)
    assert auto.predicted_tok_s >= 10.0
    gain = slots * auto.predicted_tok_s / (slots // 2 * half.predicted_tok_s)
    assert gain >= MIN_AGGREGATE_GAIN
    if slots < 8:
        double = _plan(gemma_path, n_parallel=2 * slots, n_ctx=single.n_ctx)
        double_gain = 2 * double.predicted_tok_s / auto.predicted_tok_s
        assert double.predicted_tok_s < 10.0 or double_gain < MIN_AGGREGATE_GAIN
        assert f"; {2 * slots} would " in auto.parallel_reason


def test_auto_keeps_one_slot_when_a_second_would_slow_the_stream_below_target(
    gemma_path: Path,
) -> None:
    single = _plan(gemma_path)
    auto = _plan(gemma_path, parallel_auto=True, target_tok_s=single.predicted_tok_s * 0.99)
    assert auto.n_parallel == 1 and auto.n_ctx == single.n_ctx
    assert auto.devices == single.devices
    assert "2 would slow each stream to" in auto.parallel_reason


@pytest.mark.parametrize(("vram", "slots"), [("44GiB", 1), ("48GiB", 2), ("80GiB", 8)])
def test_auto_stops_where_the_cache_would_not_fit(tmp_path: Path, vram: str, slots: int) -> None:
    """A 70B at Q4_K_M on one GPU: slots take what the weights leave (8192 context each,
    about 2.5 GiB of cache), and never push layers off the GPU."""
    path = write_gguf(tmp_path / "L-Q4_K_M.gguf", llama70b_spec("Q4_K_M", with_tokens=False))[0]
    hardware = what_if_hardware(vram=[vram], ram="64GiB")
    request = PlanRequest(parallel_auto=True, calibrate_speed=False)
    auto = plan_model({"Q4_K_M": read_gguf(path)}, hardware, request, model_name="70B")
    assert auto.fits and auto.n_parallel == slots and auto.full_offload
    assert auto.n_ctx == 8192 * slots
    if slots < 8:
        assert f"{2 * slots} would not fit" in auto.parallel_reason
        assert "GiB over" in auto.parallel_reason


def test_awq_runs_one_slot_and_says_so() -> None:
    entry = load_catalog().get("huozi3")
    assert entry is not None and entry.awq is not None and entry.arch is not None
    figures = AwqFigures.from_catalog("huozi3:AWQ", entry.arch, entry.awq.size_bytes)
    hardware = what_if_hardware(vram=["48GiB"], ram="64GiB")
    for request in (PlanRequest(parallel_auto=True), PlanRequest(n_parallel=4)):
        plan = plan_awq(figures, hardware, request)
        assert plan.n_parallel == 1 and plan.parallel_reason == ONE_SLOT_REASON
        assert ONE_SLOT_REASON in plan.reasons
    assert plan_awq(figures, hardware).parallel_reason == ""


def test_plan_cli_parallel_auto(gemma_path: Path) -> None:
    runner = CliRunner()
    args = [str(gemma_path), "--ram", "16GiB", "--cpu-only", "--threads", "2", "--json"]
    auto = json.loads(runner.invoke(plan_command, [*args, "--parallel", "auto"]).output)
    assert auto["n_parallel"] > 1 and auto["parallel_reason"].startswith("--parallel auto: ")
    named = runner.invoke(plan_command, [*args, "--parallel", str(auto["n_parallel"])])
    assert json.loads(named.output)["parallel_reason"] == ""
    bad = runner.invoke(plan_command, [*args, "--parallel", "0"])
    assert bad.exit_code == 2 and "parallel must be 'auto' or a slot count" in bad.output


# -- admission: arrival order, several streams per request, cancellation ---------


def test_requests_are_admitted_in_arrival_order_with_their_choices() -> None:
    async def run() -> None:
        slots = StreamSlots(4)
        await slots.acquire(3)
        order: list[str] = []

        async def request(name: str, n: int) -> None:
            await slots.acquire(n)
            order.append(name)

        big = asyncio.create_task(request("two choices", 2))
        await asyncio.sleep(0)
        small = asyncio.create_task(request("one", 1))  # would fit now, but arrived later
        await asyncio.sleep(0)
        assert order == [] and slots.waiting == 2 and slots.busy == 3
        slots.release(3)
        await asyncio.gather(big, small)
        assert order == ["two choices", "one"] and slots.busy == 3 and slots.waiting == 0

    asyncio.run(run())


def test_a_cancelled_waiter_leaves_the_queue_and_lets_the_next_in() -> None:
    async def run() -> None:
        slots = StreamSlots(2)
        await slots.acquire(1)
        big = asyncio.create_task(slots.acquire(2))
        await asyncio.sleep(0)
        small = asyncio.create_task(slots.acquire(1))
        await asyncio.sleep(0)
        assert slots.waiting == 2
        big.cancel()  # its client went away
        await small  # the free stream goes to the next in line at once
        assert slots.busy == 2 and slots.waiting == 0
        with pytest.raises(asyncio.CancelledError):
            await big

    asyncio.run(run())


def test_a_waiter_cancelled_as_its_turn_came_gives_the_streams_back() -> None:
    async def run() -> None:
        slots = StreamSlots(1)
        await slots.acquire(1)
        late = asyncio.create_task(slots.acquire(1))
        await asyncio.sleep(0)
        slots.release(1)  # granted ...
        late.cancel()  # ... and cancelled before it ran
        with pytest.raises(asyncio.CancelledError):
            await late
        assert slots.busy == 0 and slots.waiting == 0

    asyncio.run(run())


# -- the pool over the thread bridge --------------------------------------------


class _Gate:
    """Streams whose second piece waits for ``open`` (a stand-in for a slow model)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def stream(self, text: str) -> TextStream:
        with self.lock:
            self.started += 1

        def pieces() -> Iterator[str]:
            yield text
            assert self.open.wait(10)
            yield "!"

        return TextStream(pieces(), GenerationStats(prompt_tokens=3, completion_tokens=2))


class _SlotModel:
    def __init__(self, max_streams: int) -> None:
        self.name = "stub"
        self.engine_label = "stub"
        self.max_streams = max_streams
        self.n_ctx = 2048
        self.slots_reason = ""

    def close(self) -> None:
        pass


async def _first(pool: ModelPool, entry: Any, gate: _Gate, name: str, n: int = 1) -> Any:
    items = pool.generate(entry, lambda model: [gate.stream(f"{name}{i}") for i in range(n)], n)
    return items, await anext(items)


def test_the_pool_runs_requests_side_by_side_up_to_the_models_slots() -> None:
    async def run() -> None:
        pool = ModelPool(ServerConfig(), lambda ref, n_ctx: _SlotModel(2))
        entry = await pool.entry_for(parse_model_ref("a/one", load_catalog()), None)
        gate = _Gate()
        first = await _first(pool, entry, gate, "a")
        second = await _first(pool, entry, gate, "b")  # runs beside the first
        assert (first[1], second[1]) == ((0, "a0"), (0, "b0"))
        third = asyncio.create_task(_first(pool, entry, gate, "c"))
        for _ in range(100):
            if entry.waiting:
                break
            await asyncio.sleep(0.01)
        assert (entry.busy, entry.waiting, gate.started) == (2, 1, 2)  # the third waits
        gate.open.set()
        rest = [item async for item in first[0]]
        assert rest == [(0, "!"), (0, Finished(GenerationStats(3, 2)))]
        items, piece = await third  # its turn came when the first ended
        assert piece == (0, "c0")
        for other in (second[0], items):
            assert [i async for i in other][-1][1] == Finished(GenerationStats(3, 2))
        for _ in range(100):
            if entry.busy == 0:
                break
            await asyncio.sleep(0.01)
        assert entry.busy == 0 and entry.requests == 3 and entry.cancelled == 0
        pool.release(entry, None)
        await pool.close()

    asyncio.run(run())


def test_n_choices_take_n_slots_and_arrive_tagged() -> None:
    async def run() -> None:
        pool = ModelPool(ServerConfig(), lambda ref, n_ctx: _SlotModel(3))
        entry = await pool.entry_for(parse_model_ref("a/one", load_catalog()), None)
        gate = _Gate()
        items, first = await _first(pool, entry, gate, "x", n=3)
        assert entry.busy == 3
        gate.open.set()
        rest = [first, *[item async for item in items]]
        for index in range(3):
            mine = [value for i, value in rest if i == index]
            assert mine == [f"x{index}", "!", Finished(GenerationStats(3, 2))]
        pool.release(entry, None)
        await pool.close()

    asyncio.run(run())


# -- n choices on a backend without shared prefill --------------------------------


class _PlainBackend:
    """A backend without ``stream_choices`` (as AWQ and a remote engine): what
    ``LoadedModel`` asks of it is recorded; its replies are canned."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.seeds: list[int | None] = []

    def stream(self, prompt: Any, sampling: Any) -> TextStream:
        self.seeds.append(sampling.seed)
        return TextStream(iter(["ok"]), GenerationStats())


def _loaded(backend: _PlainBackend) -> Any:
    from localchat.services.model import LoadedModel
    from localchat.services.remote import REMOTE_FORMAT

    ref = parse_model_ref("a/one", load_catalog(), allow_paths=False)
    return LoadedModel(ref, None, None, backend, REMOTE_FORMAT)  # type: ignore[arg-type]


def test_more_choices_than_the_model_runs_at_once_is_refused_naming_n() -> None:
    model = _loaded(_PlainBackend(max_streams=1))  # AWQ runs one stream
    with pytest.raises(errors.InvalidRequest, match=r"^n: 2 choices asked for, but a/one "):
        model.stream_completion_choices("Hi", n=2)
    with pytest.raises(errors.InvalidRequest, match="generates 1 reply at once"):
        model.check_choices(2)
    model.check_choices(1)


def test_choices_without_shared_prefill_are_separate_streams_with_their_own_seeds() -> None:
    from localchat.types import SamplingParams

    backend = _PlainBackend(max_streams=64)  # a remote engine batches on its side
    model = _loaded(backend)
    seeded = SamplingParams(seed=2**32 - 2, stop_on_repetition=False)
    streams = model.stream_completion_choices("Hi", seeded, n=3)
    assert ["".join(s) for s in streams] == ["ok", "ok", "ok"]
    assert backend.seeds == [2**32 - 2, 0, 1]  # seed + i, in llama.cpp's seed range
    backend.seeds.clear()
    model.stream_completion_choices("Hi", SamplingParams(), n=2)
    assert backend.seeds == [None, None]  # no seed: each draws its own
