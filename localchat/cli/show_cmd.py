"""``localchat show MODEL``: the chat format a model gets, how it calls tools (its own
syntax, or the generic JSON fallback), and the exact prompt it sees."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

import click

from localchat import services
from localchat.errors import ConfigError
from localchat.types import Message

if TYPE_CHECKING:
    from localchat.services import ModelInfo

SAMPLE_CONVERSATION = (
    Message("system", "You are a helpful assistant."),
    Message("user", "What is the capital of France?"),
    Message("assistant", "Paris."),
    Message("user", "And of China? 请用中文回答。"),
)


@click.command("show")
@click.argument("model")
@click.option(
    "--render",
    "render_file",
    type=click.File("r", encoding="utf-8"),
    help="Render this JSON list of {role, content} messages to stdout, byte-exact.",
)
def show(model: str, render_file: IO[str] | None) -> None:
    """Show MODEL's chat format, stop strings/tokens, sampling and a rendered prompt.

    With --render FILE.json (or - for stdin), print only the prompt the given
    OpenAI-style messages render to, generation prompt appended (tool calls and
    results included, as the model sees them).
    """
    info = services.show_model(model)
    if render_file is not None:
        messages = _read_messages(render_file)
        _write_exact(services.render_chat(info.chat_format, messages))
        return
    _print_summary(info)


def _read_messages(handle: IO[str]) -> list[Message]:
    name = getattr(handle, "name", "messages")
    try:
        data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc})") from exc
    except RecursionError as exc:  # json's parser recurses once per nesting level
        raise ConfigError(f"{name}: the JSON is nested too deeply to be messages") from exc
    try:
        return services.messages_from_json(data)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc.message}") from exc


def _write_exact(text: str) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _print_summary(info: ModelInfo) -> None:
    if info.embedding is not None:
        _print_embedding_summary(info)
        return
    chat_format = info.chat_format
    sample: tuple[Message, ...] = SAMPLE_CONVERSATION
    if chat_format.name == "reflection":  # show the official system prompt it adds
        sample = sample[1:]
    spec = chat_format.prompt(sample)
    stop_strings = ", ".join(json.dumps(s, ensure_ascii=False) for s in spec.stop_strings)
    rows = [
        ("model", info.label),
        ("file", str(info.file) if info.file else info.note),
        ("format", info.format or ""),
        ("chat format", f"{chat_format.name} (from {_source_words(chat_format.source)})"),
        ("", chat_format.description),
        ("stop strings", stop_strings or "-"),
        ("stop tokens", ", ".join(str(t) for t in spec.stop_token_ids) or "-"),
        ("BOS in prompt", _bos_words(spec.has_bos)),
        ("sampling", _sampling_words(chat_format.default_sampling)),
        ("reply parts", _parts_words(chat_format.reply_parser() is not None)),
        ("tools", services.tool_support(chat_format)),
    ]
    for label, value in rows:
        if value:
            click.echo(f"{label + ':' if label else '':<15}{value}")
    click.echo("\nA sample conversation renders to (between the rules, byte-exact):")
    click.echo("─" * 60)
    click.echo(spec.text, nl=False)
    click.echo("" if spec.text.endswith("\n") else "⏎")
    click.echo("─" * 60)


def _print_embedding_summary(info: ModelInfo) -> None:
    """An embedding model has no chat format to show: what it makes instead."""
    assert info.embedding is not None
    size, pooling = info.embedding.dimensions, info.embedding.pooling
    rows = [
        ("model", info.label),
        ("file", str(info.file) if info.file else info.note),
        ("format", info.format or ""),
        ("kind", f"embedding model, {size} dimensions, pooling {pooling}"),
        ("context", f"{info.n_ctx_train} tokens per input (trained)" if info.n_ctx_train else ""),
        ("use", "localchat embed, /v1/embeddings, /api/embed (it makes vectors, not text)"),
    ]
    for label, value in rows:
        if value:
            click.echo(f"{label + ':':<15}{value}")


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
