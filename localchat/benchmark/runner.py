"""``localchat bench``: llama-bench-style speed tests of the plan localchat would use.

Tests (each repeated, mean ± sd in tok/s):

* ``pp{N}``: process an N-token prompt from an empty cache (prompt processing);
* ``tg{N}``: sample and decode N tokens one by one from an empty cache (generation);
* ``pp{N} @ d{D}`` and ``tg{N} @ d{D}``: the same with D tokens already in the cache
  (D defaults to half the context), which is what long conversations pay.

The four measurements give seconds per token for decode and prefill as
``base + per_kv × tokens cached``: the planner's speed terms, stored per model,
build and device (``planner.speed_calibration``) so that later plans on this machine
predict from measurement.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localchat.errors import ConfigError, EngineError
from localchat.gguf import read_gguf
from localchat.hardware.types import Hardware
from localchat.planner.calibration import llama_cpp_version
from localchat.planner.plan import Plan
from localchat.planner.speed import SpeedTerms
from localchat.planner.speed_calibration import device_key, model_key, record_bench

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchRequest:
    model: str | None = None  # as `ask -m` takes it; None: the default model
    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 3
    depth: int | None = None  # tokens already cached for the @d tests; None: half the context
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    store: bool = True  # keep the result to calibrate the planner
    rpc: str | None = None  # llama.cpp RPC workers "host:port,..." (never stored: not local)
    link: str | None = None  # network speed to them, for the prediction


@dataclass
class BenchTest:
    name: str  # "pp512", "tg128", "pp512 @ d4096", ...
    kind: str  # "pp" or "tg"
    n_tokens: int
    depth: int
    seconds: list[float] = field(default_factory=list)

    @property
    def tok_s_runs(self) -> list[float]:
        return [self.n_tokens / s for s in self.seconds if s > 0]

    @property
    def mean_tok_s(self) -> float:
        return statistics.fmean(self.tok_s_runs)

    @property
    def sd_tok_s(self) -> float:
        runs = self.tok_s_runs
        return statistics.stdev(runs) if len(runs) > 1 else 0.0

    @property
    def seconds_per_token(self) -> float:
        """The fastest run's: other programs can only slow a run down, so the fastest is
        the closest to what this machine does undisturbed (what calibration wants)."""
        return min(self.seconds) / self.n_tokens

    @property
    def average_kv(self) -> float:
        """Tokens in the cache, on average, while this test ran."""
        return self.depth + (self.n_tokens / 2 if self.kind == "pp" else 1 + self.n_tokens / 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.name,
            "n_tokens": self.n_tokens,
            "depth": self.depth,
            "tok_s_mean": round(self.mean_tok_s, 3),
            "tok_s_sd": round(self.sd_tok_s, 3),
            "tok_s_runs": [round(v, 3) for v in self.tok_s_runs],
        }


@dataclass
class BenchResult:
    model: str
    file: str
    settings: dict[str, Any]  # what was loaded: n_ctx, n_gpu_layers, threads, ...
    device: str
    llama_cpp_version: str
    tests: list[BenchTest]
    measured: SpeedTerms
    modelled: SpeedTerms
    predicted_before: dict[str, float]  # what `plan` predicted before this bench
    stored: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "file": self.file,
            "settings": self.settings,
            "device": self.device,
            "llama_cpp_version": self.llama_cpp_version,
            "tests": [t.to_json() for t in self.tests],
            "measured_terms": self.measured.to_json(),
            "modelled_terms": self.modelled.to_json(),
            "predicted_before": self.predicted_before,
            "stored": self.stored,
        }


def depth_for(n_ctx: int, request: BenchRequest) -> int:
    """Tokens cached for the @d tests: asked for, else half the context; room kept for the
    test's own tokens.  0 when the context has no room for a deeper test."""
    room = n_ctx - max(request.n_prompt, request.n_gen) - 2
    if room < 0:
        raise ConfigError(
            f"a {n_ctx}-token context cannot hold the {request.n_prompt}-token prompt test "
            f"or the {request.n_gen}-token generation test",
            hint="raise --ctx or lower --prompt-tokens / --gen-tokens",
        )
    wanted = request.depth if request.depth is not None else n_ctx // 2
    if request.depth is not None and wanted > room:
        raise ConfigError(
            f"--depth {wanted} leaves no room for the tests in a {n_ctx}-token context",
            hint=f"use at most {max(room, 0)} or raise --ctx",
        )
    return max(min(wanted, room), 0)


def measure(
    backend: Any,
    *,
    model: str,
    path: Path,
    before: Plan,
    modelled: SpeedTerms,
    request: BenchRequest,
    hardware: Hardware,
    say: Progress,
) -> BenchResult:
    """Time ``backend`` (loaded as ``before`` planned it) and fit the planner's speed terms
    (``modelled``: the uncalibrated ones); store the result unless ``request.store`` is
    False."""
    if not hasattr(backend, "time_prompt"):
        raise EngineError(f"{model}: its backend cannot be benchmarked")
    tests = _run_tests(backend, request, depth_for(before.n_ctx, request), say)
    result = BenchResult(
        model=model,
        file=str(path),
        settings=_settings_of(backend.settings),
        device=device_key(hardware),
        llama_cpp_version=llama_cpp_version(),
        tests=tests,
        measured=fit_terms(tests, modelled),
        modelled=modelled,
        predicted_before=_predicted(before, request),
    )
    if request.store and not hardware.remotes:  # workers' speed is not this machine's
        _store(result, path)
    return result


def check_request(request: BenchRequest) -> None:
    for name in ("n_prompt", "n_gen", "repetitions"):
        if getattr(request, name) < 1:
            raise ConfigError(f"{name} must be at least 1")


def _run_tests(backend: Any, request: BenchRequest, depth: int, say: Progress) -> list[BenchTest]:
    pp, tg = request.n_prompt, request.n_gen
    tests = [BenchTest(f"pp{pp}", "pp", pp, 0), BenchTest(f"tg{tg}", "tg", tg, 0)]
    if depth:
        tests += [
            BenchTest(f"pp{pp} @ d{depth}", "pp", pp, depth),
            BenchTest(f"tg{tg} @ d{depth}", "tg", tg, depth),
        ]
    backend.time_prompt(min(pp, 32), 0)  # warm-up: page in the weights, build the graphs
    filled = 0  # tokens cached that the @d runs keep (each run cuts the cache back to d)
    for test in tests:
        if test.depth > filled:
            say(f"filling the cache with {test.depth} tokens")
            backend.time_prompt(test.depth, 0)
            filled = test.depth
        for rep in range(request.repetitions):
            say(f"{test.name}: run {rep + 1}/{request.repetitions}")
            if test.kind == "pp":
                test.seconds.append(backend.time_prompt(test.n_tokens, test.depth))
            else:
                test.seconds.append(backend.time_decode(test.n_tokens, test.depth))
    return tests


def fit_terms(tests: list[BenchTest], modelled: SpeedTerms) -> SpeedTerms:
    """Measured ``base + per_kv × cached`` for decode and prefill.  Without @d tests the
    per-token cache cost is the modelled one, scaled like the base."""
    by_kind = {kind: [t for t in tests if t.kind == kind] for kind in ("tg", "pp")}
    decode = _line(by_kind["tg"], modelled.decode_base_s, modelled.decode_per_kv_s)
    prefill = _line(by_kind["pp"], modelled.prefill_base_s, modelled.prefill_per_kv_s)
    return SpeedTerms(decode[0], decode[1], prefill[0], prefill[1])


def _line(tests: list[BenchTest], base_model: float, slope_model: float) -> tuple[float, float]:
    shallow = min(tests, key=lambda t: t.depth)
    deep = max(tests, key=lambda t: t.depth)
    if deep.depth > shallow.depth:
        slope = (deep.seconds_per_token - shallow.seconds_per_token) / (
            deep.average_kv - shallow.average_kv
        )
        slope = max(slope, 0.0)
    else:
        modelled_here = base_model + slope_model * shallow.average_kv
        slope = slope_model * shallow.seconds_per_token / modelled_here
    base = max(shallow.seconds_per_token - slope * shallow.average_kv, 1e-9)
    return base, slope


def _settings_of(settings: Any) -> dict[str, Any]:
    keys = (
        "n_ctx", "n_gpu_layers", "n_cpu_moe", "n_threads", "n_threads_batch", "type_k",
        "type_v", "flash_attn", "n_batch", "n_ubatch",
    )  # fmt: skip
    return {key: getattr(settings, key, None) for key in keys}


def _predicted(plan: Any, request: BenchRequest) -> dict[str, Any]:
    terms = plan.speed.terms
    return {
        "source": plan.speed.source,
        "pp_tok_s": round(terms.prefill_tok_s(request.n_prompt), 3),
        "tg_tok_s": round(terms.decode_tok_s(1 + request.n_gen / 2), 3),
    }


def _store(result: BenchResult, path: Path) -> None:
    record_bench(
        model=model_key(read_gguf(path)),
        llama_version=result.llama_cpp_version,
        device=result.device,
        settings=result.settings,
        measured=result.measured,
        modelled=result.modelled,
        results={t.name: t.to_json() for t in result.tests},
    )
    result.stored = True
