"""Options and input handling shared by several commands."""

from __future__ import annotations

from typing import TextIO

import click

model_option = click.option(
    "-m",
    "--model",
    "model",
    metavar="MODEL",
    help="Catalog name, owner/repo[:QUANT], hf.co/owner/repo:QUANT, or a .gguf path "
    "(default: the configured default model).",
)


def read_prompt(prompt: str | None, stdin: TextIO) -> str:
    """The prompt argument, with any text piped on stdin put before it."""
    piped = "" if stdin is None or stdin.isatty() else stdin.read()
    parts = [part for part in (piped.strip("\n"), prompt) if part]
    if not parts:
        raise click.UsageError("give a PROMPT argument or pipe text on stdin")
    return "\n\n".join(parts)
