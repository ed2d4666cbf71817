"""Load an AWQ checkpoint through GPTQModel (transformers 5's AWQ path) and check it.

torch, transformers and gptqmodel are imported here only, when a model is loaded.
GPTQModel builds the quantized model and reads the shards with accelerate's
``load_checkpoint_in_model``; around that call we rename AutoAWQ's legacy Mixtral
keys (``keys.legacy_key_map``) and record every name the checkpoint held, then refuse
the model if any weight is missing or unexpected, or its first logits are not finite.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from localchat.engine.awq.keys import KeyCheck, check_keys, legacy_key_map
from localchat.engine.settings import AwqSettings
from localchat.errors import BackendUnavailable, EngineError
from localchat.safetensors import read_checkpoint

INSTALL_HINT = (
    'install the AWQ backend: pip install "localchat[awq]" '
    "(with an NVIDIA GPU, first the CUDA build of torch from pytorch.org)"
)
_PATCH_LOCK = threading.Lock()  # one load at a time patches accelerate's reader
_QUIET_LOGGERS = ("transformers", "gptqmodel", "accelerate", "torchao", "logbar", "tokenicer")


@dataclass
class LoadedAwq:
    model: Any  # the transformers model (GPTQModel's quantized modules inside)
    tokenizer: Any
    torch: Any
    device: str
    key_check: KeyCheck
    renamed_keys: int
    cache_kwarg: str  # "cache" (transformers >= 5.2x) or "past_key_values"


def import_torch_stack() -> tuple[Any, Any]:
    """(torch, gptqmodel), or BackendUnavailable saying what to install."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    try:
        with quiet_output():
            import gptqmodel
            import torch
            import transformers
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "a dependency"
        raise BackendUnavailable(f"the AWQ backend needs {missing}", hint=INSTALL_HINT) from exc
    except (OSError, RuntimeError) as exc:  # a torch build that cannot load here
        raise BackendUnavailable(
            f"the AWQ backend's libraries failed to load ({type(exc).__name__}: {exc})",
            hint=INSTALL_HINT,
        ) from exc
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # untyped library
    return torch, gptqmodel


@contextlib.contextmanager
def quiet_output(sink: io.StringIO | None = None) -> Iterator[io.StringIO]:
    """Python-side prints and library logs go to ``sink`` (the load log), not the terminal."""
    sink = sink or io.StringIO()
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield sink
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def load_awq(settings: AwqSettings, log: io.StringIO) -> LoadedAwq:
    """The checked model and its tokenizer; EngineError when it would not run right."""
    torch, gptqmodel = import_torch_stack()
    if settings.n_threads:
        torch.set_num_threads(settings.n_threads)
    checkpoint = read_checkpoint(settings.model_dir)
    if checkpoint.quant_method != "awq":
        raise EngineError(
            f"{settings.model_dir.name} is not an AWQ checkpoint "
            f"(quant_method {checkpoint.quant_method or 'none'})",
            hint="localchat runs GGUF files and AWQ safetensors",
        )
    key_map = legacy_key_map(checkpoint.tensor_names)
    with quiet_output(log), _renamed_checkpoint_keys(key_map) as seen:
        try:
            wrapped = gptqmodel.GPTQModel.load(str(settings.model_dir), device=settings.device)
        except (RuntimeError, ValueError, OSError, KeyError, NotImplementedError) as exc:
            raise _load_error(settings, exc) from exc
    model = getattr(wrapped, "model", wrapped)
    model.eval()
    key_check = _check(seen, model)
    tokenizer = _tokenizer(settings, wrapped)
    _require_finite_logits(torch, model, tokenizer, settings)
    parameters = inspect.signature(model.forward).parameters
    cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
    return LoadedAwq(model, tokenizer, torch, settings.device, key_check, len(key_map), cache_kwarg)


@dataclass
class _Seen:
    model_keys: set[str]
    loaded_keys: set[str]
    loads: int = 0


@contextlib.contextmanager
def _renamed_checkpoint_keys(key_map: Mapping[str, str]) -> Iterator[_Seen]:
    """Rename checkpoint keys as accelerate reads the shards, and record what it saw."""
    import accelerate
    import accelerate.utils.modeling as modeling

    seen = _Seen(set(), set())

    def load_in_model(model: Any, *args: Any, **kwargs: Any) -> Any:
        seen.loads += 1
        seen.model_keys |= set(model.state_dict().keys())
        return original_load_in_model(model, *args, **kwargs)

    def load_state_dict(path: Any, *args: Any, **kwargs: Any) -> Any:
        tensors = original_load_state_dict(path, *args, **kwargs)
        renamed = {key_map.get(name, name): tensor for name, tensor in tensors.items()}
        seen.loaded_keys |= set(renamed)
        return renamed

    with _PATCH_LOCK:
        original_load_in_model = accelerate.load_checkpoint_in_model
        original_load_state_dict = modeling.load_state_dict
        accelerate.load_checkpoint_in_model = load_in_model
        modeling.load_state_dict = load_state_dict
        try:
            yield seen
        finally:
            accelerate.load_checkpoint_in_model = original_load_in_model
            modeling.load_state_dict = original_load_state_dict


def _check(seen: _Seen, model: Any) -> KeyCheck:
    if not seen.loads or not seen.loaded_keys:
        raise EngineError(
            "GPTQModel loaded this checkpoint in a way localchat cannot check",
            hint="its weights could not be verified; please report the model",
        )
    tied = {}
    if getattr(model.config, "tie_word_embeddings", False):
        tied = {"lm_head.weight": "model.embed_tokens.weight"}
    result = check_keys(seen.model_keys, seen.loaded_keys, tied=tied)
    if not result.ok:
        raise EngineError(
            f"the checkpoint does not match the model: {result.summary()}",
            hint="the checkpoint is incomplete or in a layout localchat does not map",
        )
    return result


def _tokenizer(settings: AwqSettings, wrapped: Any) -> Any:
    tokenizer = getattr(wrapped, "tokenizer", None)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # gptqmodel wraps it (tokenicer)
    if tokenizer is None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(settings.model_dir))
        except (OSError, ValueError) as exc:
            raise EngineError(f"{settings.model_dir.name}: cannot load its tokenizer") from exc
    return tokenizer


def _require_finite_logits(torch: Any, model: Any, tokenizer: Any, settings: AwqSettings) -> None:
    ids = tokenizer("Hello", add_special_tokens=True)["input_ids"][:8] or [0]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=settings.device)).logits
    if not bool(torch.isfinite(logits).all()):
        raise EngineError(
            f"{settings.model_dir.name}: the first logits are not finite (NaN/inf)",
            hint="the weights did not load as the model expects; please report the model",
        )


def _load_error(settings: AwqSettings, exc: Exception) -> EngineError:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    hint = "see `localchat doctor`"
    if "out of memory" in text.lower():
        hint = "not enough GPU memory: try a GGUF quant of this model (see `localchat plan`)"
    return EngineError(f"GPTQModel could not load {settings.model_dir.name} ({text})", hint=hint)
