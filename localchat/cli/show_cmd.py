"""``localchat show MODEL``: the chat format a model gets and the exact prompt it sees."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

SAMPLE_CONVERSATION = (
    ("system", "You are a helpful assistant."),
    ("user", "What is the capital of France?"),
    ("assistant", "Paris."),
    ("user", "And of China? 请用中文回答。"),
)


@dataclass(frozen=True)
class ShownModel:
    """What ``show`` found out about MODEL before resolving its format."""

    label: str
    entry: Any  # CatalogEntry | None
    metadata: Mapping[str, Any]
    file: Path | None
    note: str = ""


@click.command("show")
@click.argument("model")
@click.option(
    "--render",
    "render_file",
    type=click.File("r", encoding="utf-8"),
    help="Render this JSON list of {role, content} messages to stdout, byte-exact.",
)
def show(model: str, render_file: Any) -> None:
    """Show MODEL's chat format, stop strings/tokens, sampling and a rendered prompt.

    With --render FILE.json (or - for stdin), print only the prompt the given
    OpenAI-style messages render to, generation prompt appended.
    """
    from localchat.formats import resolve_format

    shown = _find_model(model)
    chat_format = resolve_format(shown.entry, shown.metadata)
    if render_file is not None:
        messages = _read_messages(render_file)
        _write_exact(chat_format.render(messages, add_generation_prompt=True))
        return
    _print_summary(shown, chat_format)


def _find_model(text: str) -> ShownModel:
    from localchat.catalog import load_catalog
    from localchat.gguf.metadata import read_gguf_metadata
    from localchat.reference import parse_model_ref
    from localchat.store import find_local

    ref = parse_model_ref(text, load_catalog())
    local = find_local(ref)
    if local is not None and local.format == "gguf":
        metadata = read_gguf_metadata(local.path)
        return ShownModel(ref.display_name, ref.entry, metadata, local.path)
    if local is not None and local.format == "awq":
        from localchat.safetensors import read_config
        from localchat.safetensors.metadata import hf_metadata

        metadata = hf_metadata(local.path, read_config(local.path))
        return ShownModel(ref.display_name, ref.entry, metadata, local.path)
    return ShownModel(ref.display_name, ref.entry, {}, None, note=_not_on_disk_note(ref.entry))


def _not_on_disk_note(entry: Any) -> str:
    if entry is None:
        return (
            "not on disk: showing the plain fallback; "
            "the GGUF's own chat template will be used once downloaded"
        )
    if entry.chat_format == "gguf":
        return (
            "not on disk: showing the family default; "
            "the GGUF's own chat template will be used once downloaded"
        )
    return "not on disk"


def _read_messages(handle: Any) -> list[Any]:
    from localchat.errors import ConfigError
    from localchat.protocol import parse_messages

    name = getattr(handle, "name", "messages")
    try:
        data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    try:
        return parse_messages(data)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc.message}") from exc


def _write_exact(text: str) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _print_summary(shown: ShownModel, chat_format: Any) -> None:
    from localchat.types import Message

    sample = SAMPLE_CONVERSATION
    if chat_format.name == "reflection":  # show the official system prompt it adds
        sample = sample[1:]
    messages = [Message(role, content) for role, content in sample]  # type: ignore[arg-type]
    spec = chat_format.prompt(messages)
    stop_strings = ", ".join(json.dumps(s, ensure_ascii=False) for s in spec.stop_strings)
    rows = [
        ("model", shown.label),
        ("file", str(shown.file) if shown.file else shown.note),
        ("chat format", f"{chat_format.name} (from {_source_words(chat_format.source)})"),
        ("", chat_format.description),
        ("stop strings", stop_strings or "-"),
        ("stop tokens", ", ".join(str(t) for t in spec.stop_token_ids) or "-"),
        ("BOS in prompt", _bos_words(spec.has_bos)),
        ("sampling", _sampling_words(chat_format.default_sampling)),
        ("reply parts", _parts_words(chat_format.reply_parser() is not None)),
    ]
    for label, value in rows:
        if value:
            click.echo(f"{label + ':' if label else '':<15}{value}")
    click.echo("\nA sample conversation renders to (between the rules, byte-exact):")
    click.echo("─" * 60)
    click.echo(spec.text, nl=False)
    click.echo("" if spec.text.endswith("\n") else "⏎")
    click.echo("─" * 60)


def _bos_words(has_bos: bool) -> str:
    return "yes (tokenize without adding another)" if has_bos else "no (the model's BOS is added)"


def _parts_words(tagged: bool) -> str:
    return "thinking / reflection / output (shown: output)" if tagged else "plain text"


def _source_words(source: str) -> str:
    return {
        "models.toml": "models.toml",
        "gguf": "the GGUF's tokenizer.chat_template",
        "family default": "the family default",
        "base model": "the GGUF: no chat template, no instruct marker, so a base model",
    }.get(source, source)


def _sampling_words(sampling: Mapping[str, float]) -> str:
    if not sampling:
        return "engine defaults"
    return " ".join(f"{key}={value:g}" for key, value in sampling.items())
