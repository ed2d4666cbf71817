"""What a parsed GGUF header must satisfy before anything trusts it.

``check_header`` runs on every local header ``read_gguf_header`` returns, so
``ask``, ``show`` and ``plan`` refuse the same files with the same message:

* tensor data: names non-empty and unique, every tensor inside the file, stored
  back to back in header order as gguf.cpp requires, none overlapping another, each
  aligned as ggml's CPU buffers need (``check_tensor_data``);
* what llama.cpp ``GGML_ASSERT``s or aborts on while loading hparams and the
  vocabulary (``check_loadable``, ``gguf.vocab``): llama.cpp ends the whole process
  there, so these files must never reach it.  The figures below come from llama.cpp's
  ``src/llama-model.cpp`` (``load_hparams``) and ``src/llama-hparams.h``;
* for the architectures the planner knows, every tensor llama.cpp creates, with the
  shape the hyperparameters imply (``gguf.layout``).  A split model's tensors are
  checked together (``check_model``), once all its parts are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from localchat.errors import CorruptModelFile
from localchat.gguf.header import GgufHeader, quote
from localchat.gguf.layout import check_layout
from localchat.gguf.vocab import check_vocab

LLAMA_MAX_LAYERS = 512
LLAMA_MAX_EXPERTS = 1024
TENSOR_ALIGNMENT = 32  # ggml-cpu asserts tensor data pointers are 32-byte aligned (mmap)
MAX_CONTEXT_TOKENS = 1 << 26  # 64M tokens: far past any real model; 2**32-1 is garbage
ROPE_SCALING_TYPES = frozenset({"none", "linear", "yarn", "longrope"})
_HINT = "the file is corrupt or was made for another program; download it again"


def check_header(header: GgufHeader) -> None:
    """Raise ``CorruptModelFile`` for anything that makes this header unsafe to load, or
    that llama.cpp would refuse.  A split part's tensors wait for ``check_model``."""
    check_tensor_data(header)
    if header.metadata.get("split.no", 0) == 0:  # later split parts carry tensors only
        check_loadable(header)
    if not is_split(header):
        check_layout(header, header.tensors)


def check_model(headers: Sequence[GgufHeader]) -> None:
    """The tensors of every part of a split model: each name once in the whole model, and
    all of them against the architecture's layout."""
    if not headers:
        return
    tensors = [t for header in headers for t in header.tensors]
    names: set[str] = set()
    for header in headers:
        for tensor in header.tensors:
            if tensor.name in names:
                raise _corrupt(header, f"tensor {quote(tensor.name)} is in two split parts")
            names.add(tensor.name)
    check_layout(headers[0], tensors)


def is_split(header: GgufHeader) -> bool:
    count = header.metadata.get("split.count", 1)
    return isinstance(count, int) and count > 1


def check_tensor_data(header: GgufHeader) -> None:
    """Every tensor's bytes inside the file, aligned, and overlapping no other tensor."""
    size = header.file_size_bytes
    if size is not None and header.tensors and header.data_offset_bytes > size:
        raise _corrupt(header, "truncated (no tensor data after the header)")
    names: set[str] = set()
    previous_end, previous_name = 0, ""
    for tensor in sorted(header.tensors, key=lambda t: t.offset):
        if not tensor.name:
            raise _corrupt(header, "a tensor has an empty name")
        if tensor.name in names:
            raise _corrupt(header, f"tensor {quote(tensor.name)} appears twice")
        names.add(tensor.name)
        start = header.data_offset_bytes + tensor.offset
        end = start + tensor.n_bytes
        if size is not None and end > size:
            raise _corrupt(
                header,
                f"truncated (tensor {quote(tensor.name)} ends at byte {end}, file has {size})",
            )
        if start % TENSOR_ALIGNMENT:
            raise _corrupt(
                header, f"tensor {quote(tensor.name)} starts at byte {start}, not 32-byte aligned"
            )
        if start < previous_end:
            raise _corrupt(
                header,
                f"tensors {quote(previous_name)} and {quote(tensor.name)} overlap",
            )
        previous_end, previous_name = end, tensor.name
    _check_packed(header)


def _check_packed(header: GgufHeader) -> None:
    """gguf.cpp: each tensor's data starts where the one before it in the header ends,
    rounded up to the alignment (a type or shape changed in place breaks this)."""
    expected, previous = 0, None
    for tensor in header.tensors:
        if tensor.offset != expected:
            after = f", where {quote(previous)} before it ends" if previous else ", expected"
            raise _corrupt(
                header,
                f"tensor {quote(tensor.name)} data at offset {tensor.offset}{after} at {expected} "
                "(a tensor's shape or type does not match its data)",
            )
        expected += -(-tensor.n_bytes // header.alignment) * header.alignment
        previous = tensor.name


def check_loadable(header: GgufHeader) -> None:
    """Refuse hparams and vocabularies llama.cpp asserts on (it aborts the process)."""
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        return  # not a model llama.cpp would load past its architecture check
    _check_layers(header, arch)
    _check_experts(header, arch)
    _check_norms_and_rope(header, arch)
    check_vocab(header, arch)


def _check_layers(header: GgufHeader, arch: str) -> None:
    meta = header.metadata
    n_layers = _int(header, f"{arch}.block_count")  # missing: llama.cpp fails cleanly
    if f"{arch}.block_count" in meta and not 0 < n_layers <= LLAMA_MAX_LAYERS:
        raise _corrupt(header, f"{arch}.block_count is {n_layers} (llama.cpp needs 1-512)")
    nextn = _int(header, f"{arch}.nextn_predict_layers")
    if nextn > n_layers:
        raise _corrupt(header, f"{arch}.nextn_predict_layers {nextn} > block_count {n_layers}")
    n_ctx = _int(header, f"{arch}.context_length")
    if f"{arch}.context_length" in meta and not 0 < n_ctx <= MAX_CONTEXT_TOKENS:
        raise _corrupt(header, f"{arch}.context_length is {n_ctx}")
    n_embd = _int(header, f"{arch}.embedding_length")
    if f"{arch}.embedding_length" in meta and not 0 < n_embd < 1 << 24:
        raise _corrupt(header, f"{arch}.embedding_length is {n_embd}")
    for key in (f"{arch}.attention.head_count", f"{arch}.attention.head_count_kv"):
        value = meta.get(key)
        if isinstance(value, list) and n_layers and len(value) != n_layers:
            raise _corrupt(header, f"{key} has {len(value)} entries for {n_layers} layers")


def _check_experts(header: GgufHeader, arch: str) -> None:
    n_expert = _int(header, f"{arch}.expert_count")
    used_value = header.metadata.get(f"{arch}.expert_used_count", 0)
    used = max(used_value) if isinstance(used_value, list) and used_value else used_value
    if not isinstance(used, int):
        raise _corrupt(header, f"{arch}.expert_used_count is not an integer")
    groups = _int(header, f"{arch}.expert_group_count")
    groups_used = _int(header, f"{arch}.expert_group_used_count")
    if n_expert > LLAMA_MAX_EXPERTS:
        raise _corrupt(header, f"{arch}.expert_count {n_expert} > llama.cpp's {LLAMA_MAX_EXPERTS}")
    if used > n_expert:
        raise _corrupt(header, f"{arch}.expert_used_count {used} > expert_count {n_expert}")
    if n_expert == 0:
        if used or groups:
            raise _corrupt(header, f"{arch}: experts used or grouped, but expert_count is 0")
        return
    if used <= 0 or groups >= n_expert:
        raise _corrupt(header, f"{arch}: inconsistent expert counts")
    if groups > 1 and (n_expert % groups or not 0 < groups_used < groups):
        raise _corrupt(header, f"{arch}: inconsistent expert group counts")


def _check_norms_and_rope(header: GgufHeader, arch: str) -> None:
    meta = header.metadata
    for key in (f"{arch}.attention.layer_norm_rms_epsilon", f"{arch}.attention.layer_norm_epsilon"):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, int | float) or not math.isfinite(value) or value < 0
        ):
            raise _corrupt(header, f"{key} is {_shown(value)} (must be a finite number >= 0)")
    scaling = meta.get(f"{arch}.rope.scaling.type")
    if scaling is not None and scaling not in ROPE_SCALING_TYPES:
        raise _corrupt(header, f"{arch}.rope.scaling.type {_shown(scaling)} is unknown")


def _int(header: GgufHeader, key: str) -> int:
    value = header.metadata.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise _corrupt(header, f"{key} is {_shown(value)}, not an integer")
    return value


def _shown(value: Any) -> str:
    return quote(value) if isinstance(value, str) else quote(repr(value))


def _corrupt(header: GgufHeader, reason: str) -> CorruptModelFile:
    return CorruptModelFile(f"{header.name}: {reason}", hint=_HINT)
