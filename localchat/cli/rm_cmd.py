"""``localchat rm MODEL[:QUANT]``: delete a model's files from the cache."""

from __future__ import annotations

import sys

import click

from localchat import services
from localchat.errors import LocalchatError
from localchat.units import format_bytes


@click.command()
@click.argument("model")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm(model: str, yes: bool) -> None:
    """Remove MODEL (all its quants on disk, or just :QUANT) and free the space.

    Blobs another snapshot still uses are kept.  Local files you ran by path are
    only dropped from `localchat list`, never deleted.
    """
    removal = services.removal_for(model)
    for m in removal.models:
        click.echo(
            f"{m.name}:{m.quant or m.format}  {format_bytes(m.size_bytes)}  {m.path}", err=True
        )
    if not yes and not removal.forgets_only:
        question = (
            f"remove {len(removal.models)} model(s), freeing {format_bytes(removal.size_bytes)}?"
        )
        _confirm(question, removal.label)
    freed = services.remove_models(removal)
    if removal.forgets_only:
        click.echo(
            f"forgot {removal.label}: it is no longer listed; the file itself was left alone",
            err=True,
        )
        return
    click.echo(f"removed {removal.label}: freed {format_bytes(freed)}", err=True)


def _confirm(question: str, name: str) -> None:
    if not sys.stdin.isatty():
        raise LocalchatError(
            f"not removing {name}: stdin is not a terminal, so I cannot ask",
            hint="pass -y to remove without asking",
        )
    if not click.confirm(question, default=False, err=True):
        raise LocalchatError(f"kept {name}", hint="nothing was removed")
