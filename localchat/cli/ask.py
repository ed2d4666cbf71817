"""``localchat ask``: one question, the answer streamed to stdout, like a Unix tool."""

from __future__ import annotations

import sys

import click

from localchat.cli.ask_run import AskRequest, read_schema, run_ask
from localchat.cli.options import (
    FiniteFloatRange,
    clean_text,
    engine_option,
    link_option,
    local_option,
    model_option,
    read_prompt,
    rpc_option,
    seed_option,
    threads_option,
)

ASK_EPILOG = """
\b
Examples:
  localchat ask "Why is the sky blue?"
  git diff | localchat ask "review this"
  localchat ask -m huozi3:q4_0 "你好"
  localchat ask --json -m ./model.gguf "hi" | jq .text
  localchat ask --schema '{"type": "object", "properties": {"city": {"type": "string"}}}' \
      "Where is the Eiffel Tower?"
"""


@click.command(epilog=ASK_EPILOG)
@click.argument("prompt", required=False)
@model_option
@click.option("-s", "--system", help="System prompt.")
@click.option("--temperature", type=FiniteFloatRange(0, 5), help="Sampling temperature.")
@click.option("--top-p", "top_p", type=FiniteFloatRange(0, 1), help="Nucleus sampling.")
@click.option(
    "--max-tokens",
    type=click.IntRange(0),
    help="Stop after this many tokens (default 2048, base models 256; 0: no limit).",
)
@seed_option
@click.option("--ctx", type=click.IntRange(256), help="Context size in tokens (default: planned).")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.option(
    "--schema",
    metavar="JSON|FILE",
    help="Answer with JSON valid against this JSON schema (text, or a file); prints only it.",
)
@click.option("--show-thinking", is_flag=True, help="Also print thinking/reflection parts.")
@click.option("-c", "--continue", "continue_last", is_flag=True, help="Continue the last chat.")
@click.option("--no-pull", is_flag=True, help="Never download; fail if the model is missing.")
@click.option("--verbose", is_flag=True, help="Show llama.cpp's own log on stderr.")
@rpc_option
@link_option
@engine_option
@local_option
def ask(
    prompt: str | None,
    model: str | None,
    system: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    ctx: int | None,
    n_threads: int | None,
    as_json: bool,
    schema: str | None,
    show_thinking: bool,
    continue_last: bool,
    no_pull: bool,
    verbose: bool,
    rpc: str | None,
    link: str | None,
    engine: str | None,
    local: bool,
) -> None:
    """Answer PROMPT (and/or text on stdin) with a local model, streamed to stdout."""
    reply_schema = read_schema(schema) if schema is not None else None
    text = read_prompt(prompt, sys.stdin.buffer if sys.stdin is not None else None)
    request = AskRequest(
        prompt=text,
        model=model,
        system=clean_text(system),
        sampling_overrides={
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "seed": seed,
        },
        n_ctx=ctx,
        n_threads=n_threads,
        as_json=as_json,
        schema=reply_schema,
        show_thinking=show_thinking,
        continue_last=continue_last,
        allow_download=not no_pull,
        verbose=verbose,
        rpc=rpc,
        link=link,
        engine=engine,
        local=local,
    )
    if engine and local:
        raise click.UsageError("--engine and --local contradict each other")
    run_ask(request)
