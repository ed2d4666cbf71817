"""Every tensor llama.cpp creates for a model, with the shape its hyperparameters imply.

A port of ``load_arch_tensors`` (``src/models/<arch>.cpp``) for the architectures the
planner knows, and of ``llama_model_loader::create_tensor``: a tensor llama.cpp needs
must be there, one it may use must have the expected shape when it is there
(``check_tensor_dims``), and a tensor it never asks for makes it refuse the file
("wrong number of tensors").  Architectures not listed here get only the generic checks
of ``gguf.checks``.

Names and shapes follow llama.cpp: ``blk.N.attn_q.weight``, shapes ``ne0`` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader, TensorInfo, quote
from localchat.gguf.hparams import Hparams, read_hparams

NVFP4 = 40  # GGML_TYPE_NVFP4: an output tensor of this type may bring its scales
_HINT = "the file is corrupt or was made for another program; download it again"
# Weights whose per-tensor ``.scale`` / ``.input_scale`` llama.cpp's generic pass loads
# (shape {1}, or {n_expert} for the merged experts) when the weight itself was loaded.
_SCALED = re.compile(
    r"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|attn_qkv|ffn_gate|ffn_down|ffn_up"
    r"|ffn_gate_shexp|ffn_down_shexp|ffn_up_shexp|(?P<exps>ffn_gate_exps|ffn_down_exps"
    r"|ffn_up_exps))\.weight$"
)
Shape = tuple[int | None, ...]  # None: any size (a vocabulary the file does not tell)


class Loader:
    """``create_tensor`` over the tensors of one model (every split part together)."""

    def __init__(self, name: str, arch: str, tensors: Sequence[TensorInfo]) -> None:
        self.name, self.arch = name, arch
        self.tensors = {t.name: t for t in tensors}
        self.used: dict[str, TensorInfo] = {}

    def take(self, name: str, shape: Shape, *, required: bool = True) -> bool:
        """Whether the tensor is there; refuses a missing required one or a wrong shape."""
        tensor = self.tensors.get(name)
        if tensor is None:
            if required:
                raise self.fail(
                    f"tensor {quote(name)} is missing (llama.cpp's {self.arch} needs it)"
                )
            return False
        if not _same_shape(tensor.shape, shape):
            raise self.fail(
                f"tensor {quote(name)} has shape {list(tensor.shape)}, llama.cpp expects "
                f"{_shown_shape(shape)} for this {self.arch} model"
            )
        self.used[name] = tensor
        return True

    def finish(self, n_expert: int) -> None:
        """The generic scale pass of ``load_tensors``, then every tensor must be used."""
        for name in list(self.used):
            match = _SCALED.match(name)
            if match:
                size = n_expert if match.group("exps") else 1
                stem = name.removesuffix(".weight")
                self.take(f"{stem}.scale", (size,), required=False)
                self.take(f"{stem}.input_scale", (size,), required=False)
        output = self.used.get("output.weight") or self.used.get("token_embd.weight")  # tied
        if output is not None and output.ggml_type == NVFP4:
            self.take("output.scale", (1,), required=False)
            self.take("output.input_scale", (1,), required=False)
        unused = [name for name in self.tensors if name not in self.used]
        if unused:
            raise self.fail(
                f"tensor {quote(unused[0])} is not one llama.cpp's {self.arch} loader uses "
                f"({len(unused)} such; llama.cpp refuses the file)"
            )

    def fail(self, reason: str) -> CorruptModelFile:
        return CorruptModelFile(f"{self.name}: {reason}", hint=_HINT)


def _same_shape(actual: tuple[int, ...], expected: Shape) -> bool:
    """``check_tensor_dims``: equal in every dimension, missing ones counting as 1."""
    if len(actual) > 4 or len(expected) > 4:
        return False
    padded_actual = (*actual, *(1,) * (4 - len(actual)))
    padded_expected = (*expected, *(1,) * (4 - len(expected)))
    return all(e is None or a == e for a, e in zip(padded_actual, padded_expected, strict=True))


def _shown_shape(shape: Shape) -> str:
    return "[" + ", ".join("any" if d is None else str(d) for d in shape) + "]"


# ------------------------------------------------------------------ shared pieces


def _embeddings(ld: Loader, hp: Hparams, *, output: str) -> None:
    """token_embd, output_norm and the output matrix: "optional" (tied to the embedding
    when absent), "required", or "tied" (never read: the embedding is always reused)."""
    ld.take("token_embd.weight", (hp.n_embd, hp.n_vocab))
    ld.take("output_norm.weight", (hp.n_embd,))
    if output != "tied":
        ld.take("output.weight", (hp.n_embd, hp.n_vocab), required=output == "required")


def _qkv(ld: Loader, il: int, hp: Hparams, n_q: int, n_k: int, n_v: int) -> None:
    """``create_tensor_qkv``: one fused attn_qkv, or separate attn_q/k/v; biases optional."""
    p = f"blk.{il}."
    if ld.take(p + "attn_qkv.weight", (hp.n_embd, n_q + n_k + n_v), required=False):
        if ld.take(p + "attn_qkv.bias", (n_q + n_k + n_v,), required=False):
            return
    else:
        for part, n_out in (("q", n_q), ("k", n_k), ("v", n_v)):
            ld.take(p + f"attn_{part}.weight", (hp.n_embd, n_out))
    for part, n_out in (("q", n_q), ("k", n_k), ("v", n_v)):
        ld.take(p + f"attn_{part}.bias", (n_out,), required=False)


def _dense_ffn(ld: Loader, il: int, hp: Hparams, *, biases: bool = False) -> None:
    p = f"blk.{il}."
    ld.take(p + "ffn_gate.weight", (hp.n_embd, hp.n_ff))
    ld.take(p + "ffn_down.weight", (hp.n_ff, hp.n_embd))
    ld.take(p + "ffn_up.weight", (hp.n_embd, hp.n_ff))
    if biases:
        ld.take(p + "ffn_gate.bias", (hp.n_ff,), required=False)
        ld.take(p + "ffn_down.bias", (hp.n_embd,), required=False)
        ld.take(p + "ffn_up.bias", (hp.n_ff,), required=False)


def _experts(ld: Loader, il: int, hp: Hparams, n_ff_exp: int, *, gate_required: bool) -> None:
    p = f"blk.{il}."
    if p + "ffn_down.0.weight" in ld.tensors:
        raise ld.fail(
            "one tensor per expert: a conversion from before April 2024, which llama.cpp "
            "no longer loads (get a newer conversion of the model)"
        )
    ld.take(p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert))
    ld.take(p + "ffn_gate_exps.weight", (hp.n_embd, n_ff_exp, hp.n_expert), required=gate_required)
    ld.take(p + "ffn_down_exps.weight", (n_ff_exp, hp.n_embd, hp.n_expert))
    ld.take(p + "ffn_up_exps.weight", (hp.n_embd, n_ff_exp, hp.n_expert))


def _qwen_moe_ff(ld: Loader, hp: Hparams) -> int:
    """The expert FFN size of qwen2moe / qwen3moe, which refuse a model without experts."""
    if hp.n_expert == 0 or hp.n_expert_used == 0:
        raise ld.fail(f"a {hp.arch} model needs experts (expert_count and expert_used_count)")
    return hp.n_ff_exp or hp.n_ff // hp.n_expert_used


# ------------------------------------------------------------------ architectures


def _llama(ld: Loader, hp: Hparams) -> None:
    _embeddings(ld, hp, output="optional")
    rope_shape = (hp.n_rot // 2,)
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        ld.take(p + "attn_norm.weight", (hp.n_embd,))
        n_q = hp.n_embd_head_k * hp.n_head
        _qkv(ld, il, hp, n_q, hp.n_embd_k_gqa, hp.n_embd_v_gqa)
        ld.take(p + "attn_output.weight", (n_q, hp.n_embd))
        ld.take(p + "attn_output.bias", (hp.n_embd,), required=False)
        ld.take(p + "ffn_norm.weight", (hp.n_embd,))
        for name in ("rope_factors_long", "rope_factors_short") if hp.longrope else ("rope_freqs",):
            ld.take(f"{name}.weight", rope_shape, required=False)  # one for all layers
        if hp.n_expert == 0:
            _dense_ffn(ld, il, hp, biases=True)
        else:
            _experts(ld, il, hp, hp.n_ff, gate_required=False)


def _qwen2(ld: Loader, hp: Hparams) -> None:
    _embeddings(ld, hp, output="optional")
    ld.take("output.bias", (hp.n_vocab,), required=False)
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        ld.take(p + "attn_norm.weight", (hp.n_embd,))
        _qkv(ld, il, hp, hp.n_embd, hp.n_embd_v_gqa, hp.n_embd_v_gqa)
        ld.take(p + "attn_output.weight", (hp.n_embd, hp.n_embd))
        ld.take(p + "ffn_norm.weight", (hp.n_embd,))
        _dense_ffn(ld, il, hp)


def _qwen2moe(ld: Loader, hp: Hparams) -> None:
    _embeddings(ld, hp, output="required")
    n_ff_shexp = hp.n_ff_shexp or hp.n_ff
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        ld.take(p + "attn_norm.weight", (hp.n_embd,))
        _qkv(ld, il, hp, hp.n_embd, hp.n_embd_v_gqa, hp.n_embd_v_gqa)
        ld.take(p + "attn_output.weight", (hp.n_embd, hp.n_embd))
        ld.take(p + "ffn_norm.weight", (hp.n_embd,))
        _experts(ld, il, hp, _qwen_moe_ff(ld, hp), gate_required=True)
        ld.take(p + "ffn_gate_inp_shexp.weight", (hp.n_embd,))
        ld.take(p + "ffn_gate_shexp.weight", (hp.n_embd, n_ff_shexp))
        ld.take(p + "ffn_down_shexp.weight", (n_ff_shexp, hp.n_embd))
        ld.take(p + "ffn_up_shexp.weight", (hp.n_embd, n_ff_shexp))


def _qwen3(ld: Loader, hp: Hparams) -> None:
    _embeddings(ld, hp, output="optional")
    if hp.arch == "qwen3":
        ld.take("cls.output.weight", (hp.n_embd, hp.n_cls_out), required=False)
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        ld.take(p + "attn_norm.weight", (hp.n_embd,))
        n_q = hp.n_embd_head_k * hp.n_head
        _qkv(ld, il, hp, n_q, hp.n_embd_v_gqa, hp.n_embd_v_gqa)
        ld.take(p + "attn_output.weight", (n_q, hp.n_embd))
        ld.take(p + "attn_k_norm.weight", (hp.n_embd_head_k,))
        ld.take(p + "attn_q_norm.weight", (hp.n_embd_head_k,))
        ld.take(p + "ffn_norm.weight", (hp.n_embd,))
        if hp.arch == "qwen3moe":
            _experts(ld, il, hp, _qwen_moe_ff(ld, hp), gate_required=True)
        else:
            _dense_ffn(ld, il, hp)


def _gemma(ld: Loader, hp: Hparams) -> None:
    """gemma, gemma2 and gemma3: the same block, with more norms in the later ones."""
    _embeddings(ld, hp, output="optional" if hp.arch == "gemma3" else "tied")
    if hp.arch == "gemma3":  # the embedding variant's dense layers: sizes 0 in a chat model
        ld.take("dense_2.weight", (hp.n_embd, 0), required=False)
        ld.take("dense_3.weight", (0, hp.n_embd), required=False)
    for il in range(hp.n_layer):
        p = f"blk.{il}."
        ld.take(p + "attn_norm.weight", (hp.n_embd,))
        n_q = hp.n_embd_head_k * hp.n_head
        _qkv(ld, il, hp, n_q, hp.n_embd_k_gqa, hp.n_embd_v_gqa)
        ld.take(p + "attn_output.weight", (n_q, hp.n_embd))
        if hp.arch != "gemma":
            ld.take(p + "post_attention_norm.weight", (hp.n_embd,))
        if hp.arch == "gemma3":
            ld.take(p + "attn_k_norm.weight", (hp.n_embd_head_k,))
            ld.take(p + "attn_q_norm.weight", (hp.n_embd_head_k,))
        ld.take(p + "ffn_norm.weight", (hp.n_embd,))
        _dense_ffn(ld, il, hp)
        if hp.arch != "gemma":
            ld.take(p + "post_ffw_norm.weight", (hp.n_embd,))


ARCHITECTURES: dict[str, Callable[[Loader, Hparams], None]] = {
    "llama": _llama,  # Llama 2/3, Mistral, and Mixtral-style MoE (expert_count > 0)
    "qwen2": _qwen2,
    "qwen2moe": _qwen2moe,
    "qwen3": _qwen3,
    "qwen3moe": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma,
    "gemma3": _gemma,
}


def check_layout(first: GgufHeader, tensors: Sequence[TensorInfo]) -> None:
    """Refuse a model of a known architecture whose tensors llama.cpp would not accept.

    ``first`` carries the key/values (the first split part); ``tensors`` are those of
    every part.  A header without ``{arch}.block_count`` describes no model (a
    metadata-only file) and is left alone, as is an unknown architecture.
    """
    arch = first.metadata.get("general.architecture")
    if arch not in ARCHITECTURES or f"{arch}.block_count" not in first.metadata:
        return
    hp = read_hparams(first, arch)
    loader = Loader(first.name, arch, tensors)
    ARCHITECTURES[arch](loader, hp)
    loader.finish(hp.n_expert)
