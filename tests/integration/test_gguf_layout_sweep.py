"""Tensor-shape mutations judged by llama.cpp itself (issue 21).

Small models of every architecture ``gguf.layout`` knows (llama dense, tied and MoE;
qwen2 with attention biases, qwen2moe with shared experts, qwen3, qwen3moe; gemma,
gemma2, gemma3) each load in the real llama.cpp.  Each is then mutated: a tensor's
dimensions swapped or changed, a tensor dropped, renamed or added, an optional tensor
added with the right or a wrong shape, a hyperparameter or the vocabulary changed so
that the shapes no longer follow.  About 300 files, a few seconds: they are tiny and a
load reads no tensor data.  For every file, our verdict (``validate_gguf`` +
``read_gguf``, what ``ask``, ``show`` and ``plan`` run) must be llama.cpp's: it loads
exactly the files we accept.  llama.cpp loads them in a child process (a crash there
counts as a refusal and is reported).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localchat.errors import CorruptModelFile
from localchat.gguf import read_gguf, validate_gguf
from tests.fixtures.gguf_files import ModelSpec, Q, TensorSpec, write_gguf
from tests.integration.cli import localchat_env

pytestmark = [pytest.mark.llama, pytest.mark.slow]

N_LAYERS, N_EMBD, N_HEAD, N_HEAD_KV, HEAD, N_FF, N_EXPERT = 2, 64, 4, 2, 16, 128, 4
TOKENS = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁hello", "a"]

ORACLE = r"""
import json, sys
import llama_cpp

@llama_cpp.llama_log_callback
def quiet(level, text, user):
    pass

llama_cpp.llama_log_set(quiet, None)
llama_cpp.llama_backend_init()
params = llama_cpp.llama_model_default_params()
params.n_gpu_layers = 0
for line in sys.stdin:
    path = line.strip()
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    print(json.dumps({"path": path, "loads": bool(model)}), flush=True)
    if model:
        llama_cpp.llama_model_free(model)
"""


# ------------------------------------------------------------------ base models


def _vocab(tokens: list[str]) -> dict[str, object]:
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * len(tokens),
        "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259),
    }


def _spec(arch: str, tensors: list[TensorSpec], **keys: object) -> ModelSpec:
    metadata: dict[str, object] = {
        "general.name": f"tiny {arch}",
        f"{arch}.block_count": N_LAYERS,
        f"{arch}.context_length": 512,
        f"{arch}.embedding_length": N_EMBD,
        f"{arch}.feed_forward_length": N_FF,
        f"{arch}.attention.head_count": N_HEAD,
        f"{arch}.attention.head_count_kv": N_HEAD_KV,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
        **{f"{arch}.{key.replace('__', '.')}": value for key, value in keys.items()},
        **_vocab(TOKENS),
    }
    return ModelSpec(arch=arch, name=f"tiny-{arch}", metadata=metadata, tensors=tensors)


def _t(name: str, *shape: int) -> TensorSpec:
    """Norms and biases in F32, matrices in Q8_0 (rows of 32-value blocks)."""
    return TensorSpec(name, shape, Q.F32 if len(shape) == 1 or shape[0] % 32 else Q.Q8_0)


def _attention(p: str, *, biases: bool = False, norms: bool = False) -> list[TensorSpec]:
    kv = N_HEAD_KV * HEAD
    out = [_t(p + "attn_norm.weight", N_EMBD), _t(p + "attn_q.weight", N_EMBD, N_HEAD * HEAD),
           _t(p + "attn_k.weight", N_EMBD, kv), _t(p + "attn_v.weight", N_EMBD, kv),
           _t(p + "attn_output.weight", N_HEAD * HEAD, N_EMBD)]  # fmt: skip
    if biases:
        out += [_t(p + "attn_q.bias", N_HEAD * HEAD), _t(p + "attn_k.bias", kv),
                _t(p + "attn_v.bias", kv)]  # fmt: skip
    if norms:
        out += [_t(p + "attn_q_norm.weight", HEAD), _t(p + "attn_k_norm.weight", HEAD)]
    return out


def _ffn(p: str) -> list[TensorSpec]:
    return [_t(p + "ffn_norm.weight", N_EMBD), _t(p + "ffn_gate.weight", N_EMBD, N_FF),
            _t(p + "ffn_down.weight", N_FF, N_EMBD), _t(p + "ffn_up.weight", N_EMBD, N_FF)]  # fmt: skip


def _experts(p: str) -> list[TensorSpec]:
    return [_t(p + "ffn_norm.weight", N_EMBD), _t(p + "ffn_gate_inp.weight", N_EMBD, N_EXPERT),
            _t(p + "ffn_gate_exps.weight", N_EMBD, N_FF, N_EXPERT),
            _t(p + "ffn_down_exps.weight", N_FF, N_EMBD, N_EXPERT),
            _t(p + "ffn_up_exps.weight", N_EMBD, N_FF, N_EXPERT)]  # fmt: skip


def _model(block: Callable[[str], list[TensorSpec]], *, tied: bool) -> list[TensorSpec]:
    tensors = [_t("token_embd.weight", N_EMBD, len(TOKENS)), _t("output_norm.weight", N_EMBD)]
    if not tied:
        tensors.append(_t("output.weight", N_EMBD, len(TOKENS)))
    return tensors + [t for il in range(N_LAYERS) for t in block(f"blk.{il}.")]


def _llama_block(p: str) -> list[TensorSpec]:
    return _attention(p) + _ffn(p)


def _llama_moe_block(p: str) -> list[TensorSpec]:
    return _attention(p) + _experts(p)


def _qwen2_block(p: str) -> list[TensorSpec]:
    return _attention(p, biases=True) + _ffn(p)


def _gemma3_block(p: str) -> list[TensorSpec]:
    post_attention, post_ffw = (
        _t(p + "post_attention_norm.weight", N_EMBD),
        _t(p + "post_ffw_norm.weight", N_EMBD),
    )
    return [*_attention(p, norms=True), post_attention, *_ffn(p), post_ffw]


def _qwen3moe_block(p: str) -> list[TensorSpec]:
    return _attention(p, norms=True) + _experts(p)


def _qwen3_block(p: str) -> list[TensorSpec]:
    return _attention(p, norms=True) + _ffn(p)


def _gemma2_block(p: str) -> list[TensorSpec]:
    post_attention = _t(p + "post_attention_norm.weight", N_EMBD)
    return [*_attention(p), post_attention, *_ffn(p), _t(p + "post_ffw_norm.weight", N_EMBD)]


def _qwen2moe_block(p: str) -> list[TensorSpec]:
    shared = [_t(p + "ffn_gate_inp_shexp.weight", N_EMBD),
              _t(p + "ffn_gate_shexp.weight", N_EMBD, N_FF),
              _t(p + "ffn_down_shexp.weight", N_FF, N_EMBD),
              _t(p + "ffn_up_shexp.weight", N_EMBD, N_FF)]  # fmt: skip
    return _attention(p, biases=True) + _experts(p) + shared


def base_models() -> dict[str, ModelSpec]:
    moe = {"expert_count": N_EXPERT, "expert_used_count": 2}
    window = {"attention__key_length": HEAD, "attention__value_length": HEAD,
              "attention__sliding_window": 32}  # fmt: skip
    return {
        "llama": _spec("llama", _model(_llama_block, tied=False)),
        "llama-tied": _spec("llama", _model(_llama_block, tied=True)),
        "llama-moe": _spec("llama", _model(_llama_moe_block, tied=False), **moe),
        "qwen2": _spec("qwen2", _model(_qwen2_block, tied=True)),
        "gemma3": _spec("gemma3", _model(_gemma3_block, tied=True), **window),
        "qwen3moe": _spec(
            "qwen3moe", _model(_qwen3moe_block, tied=True), expert_feed_forward_length=N_FF, **moe
        ),
        "qwen3": _spec("qwen3", _model(_qwen3_block, tied=False)),
        "qwen2moe": _spec(
            "qwen2moe", _model(_qwen2moe_block, tied=False), expert_feed_forward_length=N_FF, **moe
        ),
        "gemma": _spec("gemma", _model(_llama_block, tied=True)),
        "gemma2": _spec("gemma2", _model(_gemma2_block, tied=True)),
    }


# ------------------------------------------------------------------ mutations

Mutation = Callable[[ModelSpec], ModelSpec | None]  # None: does not apply to this model


def _with_tensor(name: str, change: Callable[[TensorSpec], TensorSpec | None]) -> Mutation:
    def mutate(spec: ModelSpec) -> ModelSpec | None:
        if all(t.name != name for t in spec.tensors):
            return None
        tensors = [change(t) if t.name == name else t for t in spec.tensors]
        return replace(spec, tensors=[t for t in tensors if t is not None])

    return mutate


def _adding(*tensors: TensorSpec, unless: str | None = None) -> Mutation:
    def mutate(spec: ModelSpec) -> ModelSpec | None:
        if unless is not None and any(t.name == unless for t in spec.tensors):
            return None
        return replace(spec, tensors=[*spec.tensors, *tensors])

    return mutate


def _setting(key: str, value: object) -> Mutation:
    def mutate(spec: ModelSpec) -> ModelSpec | None:
        return replace(spec, metadata={**spec.metadata, f"{spec.arch}.{key}": value})

    return mutate


def _shape(*shape: int) -> Callable[[TensorSpec], TensorSpec]:
    return lambda t: TensorSpec(t.name, shape, t.ggml_type)


def _fused_qkv(spec: ModelSpec) -> ModelSpec:
    """Layer 0's attn_q/k/v as one attn_qkv matrix (what some conversions write)."""
    separate = {f"blk.0.attn_{part}.weight" for part in "qkv"}
    fused = _t("blk.0.attn_qkv.weight", N_EMBD, N_HEAD * HEAD + 2 * N_HEAD_KV * HEAD)
    return replace(spec, tensors=[fused, *(t for t in spec.tensors if t.name not in separate)])


def _one_token_less(spec: ModelSpec) -> ModelSpec:
    return replace(spec, metadata={**spec.metadata, **_vocab(TOKENS[:-1])})


MUTATIONS: dict[str, Mutation] = {
    "token_embd dims swapped": _with_tensor("token_embd.weight", _shape(len(TOKENS), N_EMBD)),
    "token_embd one row more": _with_tensor("token_embd.weight", _shape(N_EMBD, len(TOKENS) + 1)),
    "vocabulary one token less": _one_token_less,
    "attn_k dims swapped": _with_tensor("blk.1.attn_k.weight", _shape(32, N_EMBD)),
    "attn_q a trailing 1": _with_tensor("blk.0.attn_q.weight", _shape(N_EMBD, N_EMBD, 1)),
    "ffn_up 32 wider": _with_tensor("blk.0.ffn_up.weight", _shape(N_EMBD + 32, N_FF)),
    "down_exps one expert less": _with_tensor(
        "blk.0.ffn_down_exps.weight", _shape(N_FF, N_EMBD, N_EXPERT - 1)
    ),
    "attn_q in Q4_K (ne0 64 < 256)": _with_tensor(
        "blk.0.attn_q.weight", lambda t: TensorSpec(t.name, t.shape, Q.Q4_K)
    ),
    "token_embd in MXFP4": _with_tensor(
        "token_embd.weight", lambda t: TensorSpec(t.name, t.shape, Q.MXFP4)
    ),
    "attn_q/k/v fused": _fused_qkv,
    "attn_q/k/v fused, attn_q kept": lambda spec: _adding(
        _t("blk.0.attn_q.weight", N_EMBD, N_EMBD)
    )(_fused_qkv(spec)),
    "ffn_gate dropped": _with_tensor("blk.0.ffn_gate.weight", lambda t: None),
    "ffn_gate_exps dropped": _with_tensor("blk.1.ffn_gate_exps.weight", lambda t: None),
    "output dropped": _with_tensor("output.weight", lambda t: None),
    "output_norm dropped": _with_tensor("output_norm.weight", lambda t: None),
    "attn_v renamed": _with_tensor(
        "blk.0.attn_v.weight", lambda t: TensorSpec("blk.0.attn_w.weight", t.shape, t.ggml_type)
    ),
    "an unknown tensor": _adding(_t("blk.0.ffn_extra.weight", N_EMBD)),
    "output added": _adding(_t("output.weight", N_EMBD, len(TOKENS)), unless="output.weight"),
    "output added, wrong size": _adding(
        _t("output.weight", N_EMBD, len(TOKENS) - 1), unless="output.weight"
    ),
    "attn_output bias": _adding(_t("blk.1.attn_output.bias", N_EMBD)),
    "attn_q bias, wrong size": _adding(
        _t("blk.0.attn_q.bias", N_EMBD + 1), unless="blk.0.attn_q.bias"
    ),
    "rope_freqs": _adding(_t("rope_freqs.weight", HEAD // 2)),
    "attn_q scale": _adding(_t("blk.0.attn_q.scale", 1)),
    "attn_norm scale": _adding(_t("blk.0.attn_norm.scale", 1)),
    "head_count_kv 1": _setting("attention.head_count_kv", 1),
    "feed_forward_length 96": _setting("feed_forward_length", 96),
    "embedding_length 96": _setting("embedding_length", 96),
    "block_count 3": _setting("block_count", 3),
    "block_count 1": _setting("block_count", 1),
    "nextn layer": _setting("nextn_predict_layers", 1),
    "key_length 8": _setting("attention.key_length", 8),
    "rope dimension 8": _setting("rope.dimension_count", 8),
    "expert_count 8": _setting("expert_count", 8),
}


def mutated_files(folder: Path) -> Iterator[tuple[str, Path]]:
    for base_name, spec in base_models().items():
        yield f"{base_name}: as is", write_gguf(folder / f"{base_name}.gguf", spec)[0]
        for i, (name, mutate) in enumerate(MUTATIONS.items()):
            mutated = mutate(spec)
            if mutated is not None:
                path = folder / f"{base_name}-{i:02d}.gguf"
                yield f"{base_name}: {name}", write_gguf(path, mutated)[0]


# ------------------------------------------------------------------ the verdicts


def our_verdict(path: Path) -> str:
    try:
        validate_gguf(path)
        read_gguf(path)
    except CorruptModelFile as exc:
        return f"refuses ({exc.message})"
    return "loads"


def llama_cpp_verdicts(paths: list[Path], home: Path) -> dict[Path, str]:
    """Load each file in a child; after a crash, go on with the rest in a new child."""
    verdicts: dict[Path, str] = {}
    while len(verdicts) < len(paths):
        left = [p for p in paths if p not in verdicts]
        done = subprocess.run(
            [sys.executable, "-c", ORACLE], input="\n".join(map(str, left)) + "\n",
            capture_output=True, text=True, timeout=300,
            env=localchat_env(home, GGML_NO_BACKTRACE="1"),  # no gdb after an abort
        )  # fmt: skip
        for line in done.stdout.splitlines():
            result = json.loads(line)
            verdicts[Path(result["path"])] = "loads" if result["loads"] else "refuses"
        if done.returncode != 0:
            crashed = next(p for p in paths if p not in verdicts)
            verdicts[crashed] = f"refuses (crashed: exit {done.returncode})"
    return verdicts


def test_shape_mutations_get_llama_cpps_verdict(tmp_path: Path, localchat_home: Path) -> None:
    files = dict(mutated_files(tmp_path))
    theirs = llama_cpp_verdicts(list(files.values()), localchat_home)
    rows = [(case, our_verdict(path), theirs[path]) for case, path in files.items()]
    for case, ours, llama in rows:
        print(f"{case:45} ours: {ours[:90]:92} llama.cpp: {llama}")
    bases = [row for row in rows if row[0].endswith(": as is")]
    assert all(llama == "loads" for _, _, llama in bases), bases  # the bases are sound
    disagree = [row for row in rows if row[1].split(" ")[0] != row[2].split(" ")[0]]
    assert not disagree, "\n".join(map(str, disagree))
    refused = sum(1 for _, _, llama in rows if llama != "loads")
    assert len(rows) - refused >= 10 and refused >= len(rows) // 2  # both verdicts exercised
