"""``localchat pull MODEL[:QUANT]``: download a model into the Hugging Face cache."""

from __future__ import annotations

import click


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
    from localchat.catalog import load_catalog
    from localchat.errors import Interrupted
    from localchat.hub import StderrProgress
    from localchat.hub import pull as pull_model
    from localchat.hub.progress import format_bytes
    from localchat.reference import parse_model_ref

    ref = parse_model_ref(model, load_catalog())
    progress = None if quiet else StderrProgress()
    try:
        local = pull_model(ref, progress=progress, update=update)
    except KeyboardInterrupt:
        raise Interrupted(
            f"pull of {ref.display_name} interrupted",
            hint=f"partial files were kept; run `localchat pull {model}` to resume",
        ) from None
    if not quiet and local.extra.get("source") != "hub":
        click.echo(f"{local.name}: on disk ({format_bytes(local.size_bytes)})", err=True)
    click.echo(str(local.path))
