"""Options and input handling shared by several commands."""

from __future__ import annotations

import math
from typing import Any, BinaryIO

import click

model_option = click.option(
    "-m",
    "--model",
    "model",
    metavar="MODEL",
    help="Catalog name, owner/repo[:QUANT], hf.co/owner/repo:QUANT, or a .gguf path "
    "(default: the configured default model).",
)


MAX_STDIN_BYTES = 16 * 2**20
# llama.cpp's sampler seed is a uint32, and 0xFFFFFFFF means "pick one at random".
MAX_SEED = 2**32 - 2


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf (they compare False to bounds)."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = float(super().convert(value, param, ctx))
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


threads_option = click.option(
    "--threads",
    "n_threads",
    type=click.IntRange(1, 1024),
    help="CPU threads for llama.cpp (default: settings.toml's threads, else the physical "
    "cores; see `localchat plan`).",
)

seed_option = click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    help=f"Random seed, 0-{MAX_SEED} (same seed + temperature 0 = same text).",
)


rpc_option = click.option(
    "--rpc",
    "rpc",
    metavar="HOST:PORT[,...]",
    envvar="LOCALCHAT_RPC",
    help="llama.cpp RPC workers (`localchat worker`) to spread layers over "
    "(also LOCALCHAT_RPC, or rpc in settings.toml; '' for none).",
)
link_option = click.option(
    "--link",
    metavar="SPEED",
    help="Network speed to the RPC workers, e.g. 1Gbit (default), 10Gbit, 1GB/s.",
)
engine_option = click.option(
    "--engine",
    "engine",
    metavar="URL",
    help="An OpenAI-compatible server to run the model (vLLM, llama-server, LM Studio, "
    "Ollama, localchat serve), e.g. http://gpu-box:8000/v1; -m is then its model name "
    "(default: LOCALCHAT_ENGINE; --local ignores it).",
)
local_option = click.option(
    "--local",
    is_flag=True,
    help="Run the model in this process even when `localchat serve` is running.",
)


def read_prompt(prompt: str | None, stdin: BinaryIO | None) -> str:
    """The prompt argument, with any text piped on stdin put before it.

    Invalid UTF-8 (on stdin, or in the argument) becomes U+FFFD: see ``clean_text``.
    """
    piped = "" if stdin is None or stdin.isatty() else _read_stdin(stdin)  # bytes, undecoded
    parts = [part for part in (piped.strip("\n"), clean_text(prompt)) if part]
    if not parts:
        raise click.UsageError("give a PROMPT argument or pipe text on stdin")
    return "\n\n".join(parts)


def clean_text(text: str | None) -> str | None:
    """Text from argv with undecodable bytes replaced by U+FFFD.

    The policy for invalid UTF-8 is *replace*, applied here once, before any model
    loads: piped logs and diffs often hold a stray Latin-1 byte, and refusing them
    would make ``git diff | localchat ask`` fail on the whole input for one character.
    Python hands undecodable argv bytes over as lone surrogates, which SQLite and
    llama.cpp cannot encode; after this they never reach either.
    """
    if text is None:
        return None
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that was never a byte
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _read_stdin(stdin: BinaryIO) -> str:
    """At most ``MAX_STDIN_BYTES``: more than any context holds is refused, not buffered."""
    data = stdin.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise click.UsageError(
            f"stdin holds more than {MAX_STDIN_BYTES // 2**20} MiB; no model's context is that long"
        )
    return data.decode("utf-8", "replace")
