"""A checkpoint folder's tokenizer facts in the GGUF metadata vocabulary.

``formats.resolve_format`` reads ``tokenizer.chat_template``, ``tokenizer.bos_token``,
``tokenizer.eos_token``, ``tokenizer.ggml.eos_token_id`` and ``general.*``; giving it the
same keys for a Hugging Face folder means an AWQ model gets the same chat format, and
so the same prompt bytes, as the GGUF of the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _first_id(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _chat_template(folder: Path, tokenizer_config: dict[str, Any]) -> str:
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: take "default"
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str) and template.strip():
        return template
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    return _token_text(_json(folder / "chat_template.json").get("chat_template"))


def hf_metadata(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """GGUF-style metadata for ``formats.resolve_format`` from a checkpoint folder."""
    folder = Path(folder)
    tokenizer_config = _json(folder / "tokenizer_config.json")
    special = _json(folder / "special_tokens_map.json")
    metadata: dict[str, Any] = {
        "general.architecture": str(config.get("model_type", "")),
        "general.name": folder.name,
    }
    for key in ("bos", "eos"):
        text = _token_text(tokenizer_config.get(f"{key}_token")) or _token_text(
            special.get(f"{key}_token")
        )
        if text:
            metadata[f"tokenizer.{key}_token"] = text
        token_id = _first_id(config.get(f"{key}_token_id"))
        if token_id is not None:
            metadata[f"tokenizer.ggml.{key}_token_id"] = token_id
    template = _chat_template(folder, tokenizer_config)
    if template:
        metadata["tokenizer.chat_template"] = template
    return metadata
