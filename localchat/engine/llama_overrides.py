"""llama.cpp tensor buffer overrides (``-ot`` / ``--n-cpu-moe``) through llama-cpp-python.

llama-cpp-python builds ``llama_model_params`` inside ``Llama.__init__`` from
``llama_model_default_params()`` and marks ``tensor_buft_overrides`` unused.  While
:func:`tensor_buffer_overrides` is active, that function returns params whose
``tensor_buft_overrides`` points at our NULL-terminated array of (regex, buffer type)
pairs, so the model loads with them.  Used to keep MoE expert tensors in RAM (the CPU
buffer type) while the rest of their layers sit on a GPU or an RPC device.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GGML_BACKEND_DEVICE_TYPE_CPU = 0  # enum ggml_backend_dev_type


class TensorBuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override``: a tensor-name regex and a buffer type."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def expert_patterns(n_cpu_moe: int) -> list[str]:
    """Regexes for the expert tensors of layers ``0..n_cpu_moe-1`` (llama.cpp's --n-cpu-moe)."""
    return [rf"blk\.{il}\.ffn_(up|down|gate)_exps" for il in range(max(n_cpu_moe, 0))]


def cpu_buffer_type() -> int:
    """The CPU device's buffer type (``ggml_backend_dev_buffer_type(dev_by_type(CPU))``)."""
    from llama_cpp._ggml import libggml

    dev_by_type = libggml.ggml_backend_dev_by_type
    dev_by_type.argtypes, dev_by_type.restype = [ctypes.c_int], ctypes.c_void_p
    buffer_type = libggml.ggml_backend_dev_buffer_type
    buffer_type.argtypes, buffer_type.restype = [ctypes.c_void_p], ctypes.c_void_p
    device = dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)
    if not device:
        raise RuntimeError("llama.cpp has no CPU device")
    return buffer_type(device)


@contextmanager
def tensor_buffer_overrides(llama_cpp: Any, patterns: list[str]) -> Iterator[Any]:
    """While active, ``llama_cpp.Llama(...)`` loads with ``patterns`` placed in CPU buffers.

    Yields the C array (or None without patterns); keep it alive as long as the model.
    """
    if not patterns:
        yield None
        return
    buft = cpu_buffer_type()
    overrides = (TensorBuftOverride * (len(patterns) + 1))()
    for slot, pattern in zip(overrides, patterns, strict=False):
        slot.pattern, slot.buft = pattern.encode(), buft
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def with_overrides() -> Any:
        params = original()
        params.tensor_buft_overrides = ctypes.cast(overrides, ctypes.c_void_p)
        return params

    module.llama_model_default_params = with_overrides
    try:
        yield overrides
    finally:
        module.llama_model_default_params = original
