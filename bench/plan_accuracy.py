"""Predicted vs logged memory: the planner against llama.cpp loading the real model.

Loads gemma-3-270m Q4_K_M with llama-cpp-python for several contexts, K/V cache
types, flash attention on/off and micro-batch sizes, captures llama.cpp's log
(``llama_log_set``), parses its buffer sizes and compares them with the planner's
prediction for the same settings, per component.  Prints a table and writes
``bench/results/plan_accuracy.json``.  Never asserts; the integration test
``tests/integration/test_plan_accuracy.py`` holds the targets.

    python bench/plan_accuracy.py [--quick] [--model PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1 << 20
RESULTS = Path(__file__).parent / "results" / "plan_accuracy.json"
KV_TYPES = (
    ("f16", "f16", False),
    ("f16", "f16", True),
    ("q8_0", "q8_0", True),
    ("q4_0", "q4_0", True),
    ("q8_0", "f16", False),
)
CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
TARGETS = {"weights_mib": 1.0, "kv_mib": 1.0, "compute_pct": 10.0, "total_pct": 3.0}


@dataclass(frozen=True)
class Case:
    n_ctx: int
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    n_ubatch: int = 512
    swa_full: bool = True

    @property
    def label(self) -> str:
        extra = ("" if self.n_ubatch == 512 else f" ub{self.n_ubatch}") + (
            "" if self.swa_full else " swa"
        )
        fa = "FA" if self.flash_attn else "noFA"
        return f"{self.n_ctx:>6} {self.type_k}/{self.type_v} {fa}{extra}"


def cases(quick: bool = False) -> list[Case]:
    """The gemma matrix: contexts x K/V types x flash attention, plus batch and SWA variants."""
    contexts = (512, 4096, 32768) if quick else CONTEXTS
    out = [Case(n, k, v, fa) for n in contexts for k, v, fa in KV_TYPES]
    out += [Case(8192, n_ubatch=128), Case(8192, flash_attn=True, n_ubatch=64)]
    out += [Case(4096, swa_full=False), Case(16384, "q8_0", "q8_0", True, swa_full=False)]
    return out


def synthetic_cases(moe: bool) -> list[Case]:
    """Small-vocabulary models, so the attention / FFN phases (not the logits) set the peak."""
    contexts = (2048, 8192) if moe else (2048, 8192, 32768)
    kinds = (("f16", "f16", False), ("f16", "f16", True)) + (
        () if moe else (("q8_0", "q8_0", True),)
    )
    return [Case(n, k, v, fa) for n in contexts for k, v, fa in kinds]


def synthetic_model(folder: Path, moe: bool) -> Path:
    """A 4-layer llama (or 8-expert MoE) with zero weights that llama.cpp loads (no vocab)."""
    from tests.fixtures.gguf_files import llama_spec, write_gguf

    spec = llama_spec(
        name="synthetic-moe" if moe else "synthetic-dense",
        quant="Q8_0",
        n_layers=4,
        n_embd=1024,
        n_head=32,
        n_head_kv=8,
        n_ff=2048,
        n_vocab=2048,
        n_ctx_train=32768,
        n_expert=8 if moe else 0,
        n_expert_used=2 if moe else 0,
        with_tokens=False,
    )
    spec.metadata["tokenizer.ggml.model"] = "none"
    return write_gguf(folder / f"{spec.name}.gguf", spec)[0]


def model_matrix(gemma: Path, folder: Path, quick: bool) -> list[tuple[str, Path, list[Case]]]:
    return [
        (f"{gemma.name} (real)", gemma, cases(quick)),
        ("synthetic dense llama", synthetic_model(folder, moe=False), synthetic_cases(False)),
        ("synthetic MoE 8x2", synthetic_model(folder, moe=True), synthetic_cases(True)),
    ]


_LOG: list[str] = []
_CALLBACK = None  # keep the ctypes callback alive


def _capture_logs(llama_cpp) -> None:
    """Route llama.cpp's log into ``_LOG`` (set before every load: others may re-route it)."""
    global _CALLBACK
    if _CALLBACK is None:

        @llama_cpp.llama_log_callback
        def _collect(level, text, user_data):
            _LOG.append(text.decode("utf-8", errors="replace"))

        _CALLBACK = _collect
    llama_cpp.llama_log_set(_CALLBACK, ctypes.c_void_p(0))


_GGML_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8, "f32": 0}


def load_and_log(model_path: Path, case: Case) -> str:
    """Load the model with llama-cpp-python and return the llama.cpp log of that load."""
    import llama_cpp

    _capture_logs(llama_cpp)
    _LOG.clear()
    llm = llama_cpp.Llama(
        model_path=str(model_path),
        n_ctx=case.n_ctx,
        n_batch=max(512, case.n_ubatch),
        n_ubatch=case.n_ubatch,
        type_k=_GGML_TYPES[case.type_k],
        type_v=_GGML_TYPES[case.type_v],
        flash_attn=case.flash_attn,
        swa_full=case.swa_full,
        n_gpu_layers=0,
        verbose=False,
    )
    llm.close()
    return "".join(_LOG)


def predict(model_path: Path, case: Case) -> dict[str, int]:
    from localchat.gguf import read_gguf
    from localchat.hardware import detect_hardware
    from localchat.planner.memory import MemorySettings, estimate_memory

    cpu = detect_hardware().cpu
    settings = MemorySettings(
        n_ctx=case.n_ctx,
        type_k=case.type_k,
        type_v=case.type_v,
        flash_attn=case.flash_attn,
        n_ubatch=case.n_ubatch,
        n_batch=max(512, case.n_ubatch),
        swa_full=case.swa_full,
    )
    est = estimate_memory(
        read_gguf(model_path), settings, cpu_arch=cpu.arch, cpu_features=cpu.features
    ).cpu
    return {"weights": est.weights_bytes, "kv": est.kv_bytes, "compute": est.compute_bytes}


def compare(model_path: Path, case: Case, model_label: str = "") -> dict:
    from localchat.planner.calibration import parse_llama_log

    logged = parse_llama_log(load_and_log(model_path, case))["devices"].get("CPU", {})
    predicted = predict(model_path, case)
    row: dict = {
        "model": model_label or model_path.name,
        "case": asdict(case),
        "label": case.label,
        "predicted": predicted,
        "logged": logged,
    }
    for part in ("weights", "kv", "compute"):
        row[f"{part}_error_mib"] = (predicted[part] - logged.get(part, 0)) / MiB
    row["compute_error_pct"] = _pct(predicted["compute"], logged.get("compute", 0))
    total_predicted, total_logged = sum(predicted.values()), sum(logged.values())
    row["total_error_pct"] = _pct(total_predicted, total_logged)
    row["within_targets"] = (
        abs(row["weights_error_mib"]) <= TARGETS["weights_mib"]
        and abs(row["kv_error_mib"]) <= TARGETS["kv_mib"]
        and abs(row["compute_error_pct"]) <= TARGETS["compute_pct"]
        and abs(row["total_error_pct"]) <= TARGETS["total_pct"]
    )
    return row


def _pct(predicted: int, logged: int) -> float:
    return 100.0 * (predicted - logged) / logged if logged else float("inf")


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / MiB:8.2f}"


def print_table(rows: list[dict]) -> None:
    print(
        f"{'model / case':<28}{'weights pred/log':>20}{'KV pred/log':>20}{'compute pred/log':>20}"
        f"{'total err':>10}  ok"
    )
    model = None
    for r in rows:
        if r["model"] != model:
            model = r["model"]
            print(f"-- {model}")
        p, g = r["predicted"], r["logged"]
        print(
            f"{r['label']:<28}{_mib(p['weights'])}/{_mib(g.get('weights', 0)).strip():<8}"
            f"  {_mib(p['kv'])}/{_mib(g.get('kv', 0)).strip():<8}"
            f"  {_mib(p['compute'])}/{_mib(g.get('compute', 0)).strip():<8}"
            f"{r['total_error_pct']:>+9.2f}%  {'yes' if r['within_targets'] else 'NO'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three contexts instead of seven")
    parser.add_argument("--model", type=Path, help="GGUF to load (default: gemma-3-270m)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.model is None:
        from localchat.catalog import load_catalog
        from localchat.store.local import pip_model_file

        entry = load_catalog().get("gemma-3-270m")
        args.model = pip_model_file(entry.name, entry.pip)  # localchat's data dir, not ~/.cache
    import tempfile

    import llama_cpp

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        rows = [
            compare(path, case, label)
            for label, path, model_cases in model_matrix(args.model, Path(folder), args.quick)
            for case in model_cases
        ]
    print_table(rows)
    worst = {
        key: max(abs(r[key]) for r in rows)
        for key in ("weights_error_mib", "kv_error_mib", "compute_error_pct", "total_error_pct")
    }
    print("worst:", ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "models": sorted({r["model"] for r in rows}),
                "llama_cpp_python": llama_cpp.__version__,
                "targets": TARGETS,
                "worst": worst,
                "rows": rows,
                "elapsed_s": round(time.perf_counter() - started, 1),
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
