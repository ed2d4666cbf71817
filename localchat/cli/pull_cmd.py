"""``localchat pull MODEL[:QUANT]``: download a model into the Hugging Face cache."""

from __future__ import annotations

import click

from localchat import services
from localchat.errors import Interrupted
from localchat.units import format_bytes


@click.command()
@click.argument("model")
@click.option(
    "--update",
    is_flag=True,
    help="Follow the repo's branch to its newest commit instead of the one pulled before.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def pull(model: str, update: bool, quiet: bool) -> None:
    """Download MODEL (catalog name, owner/repo[:QUANT] or hf.co/owner/repo:QUANT).

    Files are verified (sha256) before they become visible; an interrupted pull
    resumes where it stopped.  Without :QUANT the planner picks the best quant for
    this machine.  Prints the path of the model file on stdout.
    """
    ref, _ = services.resolve_model(model)
    progress = None if quiet else services.StderrProgress()
    try:
        local = services.pull_model(ref, progress=progress, update=update)
    except KeyboardInterrupt:
        raise Interrupted(
            f"pull of {ref.display_name} interrupted",
            hint=f"partial files were kept; run `localchat pull {model}` to resume",
        ) from None
    if not quiet and local.source != "hub":
        click.echo(f"{local.name}: on disk ({format_bytes(local.size_bytes)})", err=True)
    click.echo(str(local.path))
