"""``localchat doctor``: name install problems, one line each with the exact fix."""

from __future__ import annotations

import sys

import click

from localchat import services


@click.command()
def doctor() -> None:
    """Check the llama.cpp build, GPU driver, CPU instructions and disk.

    Exits 0 when all is well, 1 when a problem was found.
    """
    results = services.run_doctor()
    for result in results:
        click.echo(result.line())
    problems = sum(1 for result in results if not result.ok)
    if problems:
        click.echo(f"{problems} problem(s) found")
        sys.exit(1)  # click.exceptions.Exit's code is dropped by cli.main(standalone_mode=False)
    click.echo("no problems found")
