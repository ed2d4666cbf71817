"""``localchat bench MODEL``: prompt processing and generation speed, llama-bench style.

The results calibrate ``localchat plan``'s speed predictions on this machine.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from localchat import services
from localchat.cli.options import link_option, rpc_option, threads_option

if TYPE_CHECKING:
    from localchat.services import BenchResult

BENCH_EPILOG = """
\b
Examples:
  localchat bench gemma-3-270m
  localchat bench ./model.gguf --ctx 4096 -r 5 --json
  localchat bench huozi3:q4_0 --ngl 20 --threads 8
"""


@click.command("bench", epilog=BENCH_EPILOG)
@click.argument("model")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Context (default: planned).")
@click.option("--ngl", "n_gpu_layers", type=click.IntRange(min=0), help="GPU layers to offload.")
@threads_option
@click.option(
    "-p",
    "--prompt-tokens",
    "n_prompt",
    type=click.IntRange(1, 65536),
    default=512,
    show_default=True,
    help="Prompt length of the pp test.",
)
@click.option(
    "-n",
    "--gen-tokens",
    "n_gen",
    type=click.IntRange(1, 65536),
    default=128,
    show_default=True,
    help="Tokens generated in the tg test.",
)
@click.option(
    "-d",
    "--depth",
    type=click.IntRange(min=0),
    help="Tokens already cached for the @d tests (default: half the context; 0: none).",
)
@click.option(
    "-r",
    "--repetitions",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Runs of each test.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-store", is_flag=True, help="Don't use the result to calibrate `plan`.")
@click.option("--verbose", is_flag=True, help="Show llama.cpp's own log on stderr.")
@rpc_option
@link_option
def bench(
    model: str,
    n_ctx: int | None,
    n_gpu_layers: int | None,
    n_threads: int | None,
    n_prompt: int,
    n_gen: int,
    depth: int | None,
    repetitions: int,
    as_json: bool,
    no_store: bool,
    verbose: bool,
    rpc: str | None,
    link: str | None,
) -> None:
    """Measure prompt processing (pp) and generation (tg) tok/s of MODEL as localchat runs it."""
    services.echo_engine_log(verbose)
    request = services.BenchRequest(
        model=model,
        n_prompt=n_prompt,
        n_gen=n_gen,
        repetitions=repetitions,
        depth=depth,
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        n_threads=n_threads,
        store=not no_store,
        rpc=rpc,
        link=link,
    )
    line = _ProgressLine()
    try:
        result = services.run_bench(request, progress=line.show)
    finally:
        line.clear()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo("\n".join(format_result(result)))


class _ProgressLine:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{text}")
        else:
            sys.stderr.write(f"localchat bench: {text}\n")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def format_result(result: BenchResult) -> list[str]:
    s = result.settings
    lines = [
        f"{result.model}: context {s['n_ctx']} · {s['n_gpu_layers']} GPU layers · threads "
        f"{s['n_threads']}/{s['n_threads_batch']} (decode/prompt) · llama-cpp-python "
        f"{result.llama_cpp_version}",
        "",
        f"{'test':<18}{'tok/s':>20}",
    ]
    for test in result.tests:
        figure = f"{test.mean_tok_s:.2f} ± {test.sd_tok_s:.2f}"
        lines.append(f"{test.name:<18}{figure:>20}")
    before = result.predicted_before
    lines += [
        "",
        f"predicted before this bench ({before['source']}): "
        f"pp {before['pp_tok_s']:.1f} tok/s, tg {before['tg_tok_s']:.1f} tok/s",
    ]
    if result.stored:
        lines.append("stored: `localchat plan` now predicts speeds on this machine from these runs")
    return lines
