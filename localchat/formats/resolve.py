"""Which chat format a model gets: models.toml → the GGUF's template → a family default."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from localchat.catalog import CatalogEntry
from localchat.errors import ConfigError, TemplateRejected
from localchat.formats.base import ChatFormat, FormatSource
from localchat.formats.builtin import (
    CHATML_END_ID,
    GEMMA_END_ID,
    LLAMA3_STOPS,
    chatml_format,
    completion_format,
    gemma_format,
    huozi3_format,
    llama3_format,
    llama31_format,
    raw_format,
)
from localchat.formats.jinja import SandboxedTemplate
from localchat.formats.reflection import reflection_format
from localchat.types import Message

# Built-in formats by the name models.toml uses for them.
BUILTIN_FORMATS: dict[str, Callable[..., ChatFormat]] = {
    "huozi3": lambda source, bos: huozi3_format(source),
    "reflection": reflection_format,
    "llama3": llama3_format,
    "llama3.1": llama31_format,
    "gemma": gemma_format,
    "chatml": lambda source, bos: chatml_format(source),
    "raw": lambda source, bos: raw_format(source),
    "completion": lambda source, bos: completion_format(source),
}

# End-of-turn markers a GGUF template may use, with their ids in the family
# whose vocabulary they belong to (the id is trusted only for that family).
_END_MARKERS: dict[str, tuple[str, int]] = {
    "<|eot_id|>": ("llama3", LLAMA3_STOPS["<|eot_id|>"]),
    "<|eom_id|>": ("llama3", LLAMA3_STOPS["<|eom_id|>"]),
    "<end_of_turn>": ("gemma", GEMMA_END_ID),
    "<|im_end|>": ("qwen", CHATML_END_ID),
    "<|endofutterance|>": ("huozi", 57001),
    "<|end|>": ("", 0),
    "<|endoftext|>": ("", 0),
}

# Words in a GGUF's names that mark an instruction-tuned (chat) model.
INSTRUCT_MARKERS = frozenset(
    {"instruct", "it", "chat", "sft", "dpo", "rlhf", "orpo", "assistant", "conversational"}
)

# Families whose GGUFs carry no template but are all chat models (huozi3's are).
CHAT_ONLY_FAMILIES = frozenset({"huozi"})

# A short conversation every usable template must render.
PROBE_CONVERSATION = (
    Message("system", "You are a helpful assistant."),
    Message("user", "Hello"),
    Message("assistant", "Hi!"),
    Message("user", "How are you?"),
)


def resolve_format(entry: CatalogEntry | None, metadata: Mapping[str, Any]) -> ChatFormat:
    """The chat format for a model, from its catalog entry and GGUF metadata.

    Order: an explicit ``chat_format`` in models.toml (anything but ``"gguf"``),
    then the GGUF's ``tokenizer.chat_template`` (sandboxed; a hostile template
    raises ``UnsafeTemplateError``), then a default for the family.  The
    entry's ``[sampling]`` overrides the format's defaults.
    """
    bos = _text(metadata.get("tokenizer.bos_token"))
    if entry is not None and not entry.uses_file_template:
        chat_format = builtin_format(entry.chat_format, "models.toml", bos)
    else:
        template = metadata.get("tokenizer.chat_template")
        if isinstance(template, str) and template.strip():
            chat_format = gguf_format(template, metadata, entry)
        elif is_base_model(metadata, entry):
            chat_format = completion_format("base model")
        else:
            chat_format = family_default(entry, metadata)
    return _with_entry_sampling(chat_format, entry)


def is_base_model(metadata: Mapping[str, Any], entry: CatalogEntry | None = None) -> bool:
    """A base model continues text (the ``completion`` format), whether it was named by
    path or by catalog name: no chat template, no instruct marker in the GGUF's names (or
    the catalog's), and an EOS that is not a chat end-of-turn token.  A GGUF that names
    nothing (no ``general.name``/``basename``) tells too little: not called a base model."""
    template = metadata.get("tokenizer.chat_template")
    if isinstance(template, str) and template.strip():
        return False
    if not (_text(metadata.get("general.name")) or _text(metadata.get("general.basename"))):
        return False
    if _text(metadata.get("tokenizer.eos_token")) in _END_MARKERS:
        return False
    if family_of(entry, metadata) in CHAT_ONLY_FAMILIES:
        return False
    texts: list[Any] = [entry.name, entry.description] if entry else []
    for key in ("general.name", "general.basename", "general.finetune", "general.tags"):
        value = metadata.get(key)
        texts += value if isinstance(value, list) else [value]
    words = {word for text in texts for word in re.split(r"[^a-z0-9]+", _text(text).lower())}
    return not words & INSTRUCT_MARKERS


def builtin_format(name: str, source: FormatSource, bos_token: str = "") -> ChatFormat:
    factory = BUILTIN_FORMATS.get(name)
    if factory is None:
        known = ", ".join(["gguf", *BUILTIN_FORMATS])
        raise ConfigError(f"unknown chat_format {name!r}", hint=f"known formats: {known}")
    return factory(source, bos_token)


def gguf_format(
    template: str, metadata: Mapping[str, Any], entry: CatalogEntry | None = None
) -> ChatFormat:
    """The GGUF's own template as a format; probed once so a bad one fails early."""
    family = family_of(entry, metadata)
    renderer = SandboxedTemplate(
        template,
        bos_token=_text(metadata.get("tokenizer.bos_token")),
        eos_token=_text(metadata.get("tokenizer.eos_token")),
        origin=_origin(entry, metadata),
    )
    _probe(renderer)
    strings, ids = _gguf_stops(template, metadata, family)
    return ChatFormat(
        name="gguf template",
        source="gguf",
        renderer=renderer,
        stop_strings=strings,
        stop_token_ids=ids,
        bos_token=renderer.bos_token,
        description="the chat template embedded in the GGUF (sandboxed Jinja)",
    )


def family_default(entry: CatalogEntry | None, metadata: Mapping[str, Any]) -> ChatFormat:
    family = family_of(entry, metadata)
    bos = _text(metadata.get("tokenizer.bos_token"))
    source: FormatSource = "family default"
    if family == "huozi":
        return huozi3_format(source)
    if family == "llama3":
        return llama3_format(source, bos)
    if family == "llama3.1":
        return llama31_format(source, bos)
    if family == "gemma":
        return gemma_format(source, bos)
    if family in ("qwen", "chatml"):
        return chatml_format(source, qwen_vocab=family == "qwen")
    return raw_format(source)


def family_of(entry: CatalogEntry | None, metadata: Mapping[str, Any]) -> str:
    """``huozi``, ``llama3``, ``llama3.1``, ``gemma``, ``qwen``, ``chatml`` or ``""``."""
    names = " ".join(
        _text(value).lower()
        for value in (
            entry.name if entry else "",
            metadata.get("general.name"),
            metadata.get("general.basename"),
        )
    )
    if "huozi" in names:
        return "huozi"
    family = (entry.family if entry else "") or _text(metadata.get("general.architecture"))
    family = family.lower()
    if family in ("llama3", "llama-3"):
        return "llama3"
    if family.startswith(("llama3.", "llama-3.")):
        return "llama3.1"
    if family.startswith("gemma"):
        return "gemma"
    if family.startswith("qwen"):
        return "qwen"
    if "smollm" in names:
        return "chatml"
    return _family_from_tokens(metadata)


def _family_from_tokens(metadata: Mapping[str, Any]) -> str:
    """Generic architectures ("llama") told apart by their special tokens."""
    bos = _text(metadata.get("tokenizer.bos_token"))
    eos = _text(metadata.get("tokenizer.eos_token"))
    if bos == "<|begin_of_text|>" or eos in ("<|eot_id|>", "<|end_of_text|>"):
        return "llama3.1"
    if eos == "<|im_end|>":
        return "qwen"
    if eos == "<end_of_turn>":
        return "gemma"
    return ""


def _gguf_stops(
    template: str, metadata: Mapping[str, Any], family: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    strings: list[str] = []
    ids: list[int] = []
    for key in ("eot", "eom", "eos"):
        token_id = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(token_id, int) and token_id >= 0 and token_id not in ids:
            ids.append(token_id)
    eos = _text(metadata.get("tokenizer.eos_token"))
    if eos:
        strings.append(eos)
    for marker, (marker_family, token_id) in _END_MARKERS.items():
        if marker not in template or marker in strings:
            continue
        strings.append(marker)
        if marker_family and family.startswith(marker_family) and token_id not in ids:
            ids.append(token_id)
    return tuple(strings), tuple(ids)


def _probe(renderer: SandboxedTemplate) -> None:
    """Render a sample conversation; a template may reject system turns, not fail."""
    for conversation in (PROBE_CONVERSATION, PROBE_CONVERSATION[1:]):
        try:
            renderer(conversation, True)
            return
        except TemplateRejected:
            continue


def _with_entry_sampling(chat_format: ChatFormat, entry: CatalogEntry | None) -> ChatFormat:
    if not entry or not entry.sampling:
        return chat_format
    return replace(chat_format, default_sampling={**chat_format.default_sampling, **entry.sampling})


def _origin(entry: CatalogEntry | None, metadata: Mapping[str, Any]) -> str:
    name = entry.name if entry else _text(metadata.get("general.name")) or "GGUF"
    return f"{name} (GGUF chat template)"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
