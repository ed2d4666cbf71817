"""``localchat embed``: texts in (arguments, or lines on stdin), one JSON vector per line out."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import BinaryIO

import click

from localchat import services
from localchat.cli.options import (
    MAX_STDIN_BYTES,
    clean_text,
    model_option,
    threads_option,
)
from localchat.errors import ConfigError

EMBED_EPILOG = """
\b
Examples:
  localchat embed -m nomic-embed-text-v1.5 "a cat" "a dog"
  cut -f2 notes.tsv | localchat embed -m nomic-embed-text-v1.5 > vectors.jsonl
  localchat embed -m bge-m3 --dimensions 256 --json "hello" | jq .dimensions
"""


@click.command(epilog=EMBED_EPILOG)
@click.argument("texts", nargs=-1)
@model_option
@click.option(
    "--dimensions",
    type=click.IntRange(1),
    help="Keep the first N values of each vector (then rescale to unit length).",
)
@click.option("--no-normalize", is_flag=True, help="Print the vectors as pooled, not unit length.")
@click.option(
    "--no-truncate",
    is_flag=True,
    help="Fail on a text longer than the model reads (default: cut it, with a note).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every vector.")
@click.option(
    "--ctx",
    type=click.IntRange(256),
    help="The longest text in tokens (default: planned; at most the model's trained context).",
)
@threads_option
@click.option("--no-pull", is_flag=True, help="Never download; fail if the model is missing.")
@click.option("--verbose", is_flag=True, help="Show llama.cpp's own log on stderr.")
def embed(
    texts: tuple[str, ...],
    model: str | None,
    dimensions: int | None,
    no_normalize: bool,
    no_truncate: bool,
    as_json: bool,
    ctx: int | None,
    n_threads: int | None,
    no_pull: bool,
    verbose: bool,
) -> None:
    """Embed each TEXT (or each line on stdin) with an embedding model, in this process.

    Prints one JSON array per input, in order, on stdout; with --json, one object.
    Every line is one input: a blank line is an error, not skipped, so the output
    lines always match the input lines.
    """
    inputs, noun = _inputs(texts, sys.stdin.buffer if sys.stdin is not None else None)
    services.echo_engine_log(verbose)
    ref, _ = services.resolve_model(model)
    services.check_embeds(ref)
    options = services.EmbedOptions(
        dimensions=dimensions,
        normalize=not no_normalize,
        truncate=not no_truncate,
        name_of=lambda index: f"{noun} {index + 1}",
    )
    with services.open_model(
        ref,
        n_ctx=ctx,
        n_threads=n_threads,
        allow_download=not no_pull,
        progress=services.StderrProgress(),
        local=True,
    ) as loaded:
        result = services.embed_inputs(loaded, inputs, options)
        for index in result.truncated:
            _note(f"{noun} {index + 1} was cut to the {loaded.n_ctx} tokens {loaded.name} reads")
        _print(result, loaded.name, as_json)


def _inputs(texts: Sequence[str], stdin: BinaryIO | None) -> tuple[list[str], str]:
    """The texts to embed and what to call one in messages ("text 2", "line 3")."""
    if texts:
        return [clean_text(text) or "" for text in texts], "text"
    if stdin is None or stdin.isatty():
        raise click.UsageError("give TEXT arguments, or pipe lines on stdin")
    data = stdin.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise ConfigError(f"stdin holds more than {MAX_STDIN_BYTES // 2**20} MiB")
    lines = data.decode("utf-8", "replace").splitlines()
    if not lines:
        raise click.UsageError("stdin is empty: pipe one text per line")
    blank = next((number for number, line in enumerate(lines, 1) if not line.strip()), None)
    if blank is not None:
        raise ConfigError(
            f"line {blank} of stdin is blank", hint="every line is embedded; remove blank lines"
        )
    return lines, "line"


def _print(result: services.Embeddings, model_name: str, as_json: bool) -> None:
    out = sys.stdout
    if as_json:
        document = {
            "model": model_name,
            "dimensions": len(result.vectors[0]) if result.vectors else result.dimensions,
            "prompt_tokens": result.prompt_tokens,
            "embeddings": result.vectors,
        }
        out.write(json.dumps(document) + "\n")
    else:
        for vector in result.vectors:
            out.write(json.dumps(vector) + "\n")
    out.flush()


def _note(text: str) -> None:
    click.echo(f"localchat: {text}", err=True)
