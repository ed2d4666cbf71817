"""``localchat rm MODEL[:QUANT]``: delete a model's files from the cache."""

from __future__ import annotations

import sys

import click

from localchat.errors import LocalchatError, ModelNotFound


@click.command()
@click.argument("model")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm(model: str, yes: bool) -> None:
    """Remove MODEL (all its quants on disk, or just :QUANT) and free the space.

    Blobs another snapshot still uses are kept.  Local files you ran by path are
    only dropped from `localchat list`, never deleted.
    """
    from localchat.catalog import load_catalog
    from localchat.reference import parse_model_ref
    from localchat.store.inventory import list_installed, remove_installed
    from localchat.units import format_bytes as human_bytes

    ref = parse_model_ref(model, load_catalog())
    targets = [m for m in list_installed() if _matches(m, ref)]
    if not targets:
        raise ModelNotFound(f"{ref.display_name} is not on disk", hint="see `localchat list`")
    if all(m.source == "pip" for m in targets):
        package = ref.entry.pip.package if ref.entry and ref.entry.pip else "its package"
        raise LocalchatError(
            f"{ref.display_name} came with a pip package",
            hint=f"remove it with `pip uninstall {package}`",
        )
    targets = [m for m in targets if m.source != "pip"]
    total = sum(m.size_bytes for m in targets if m.source != "path")
    for m in targets:
        click.echo(
            f"{m.name}:{m.quant or m.format}  {human_bytes(m.size_bytes)}  {m.path}", err=True
        )
    if not yes and any(m.source != "path" for m in targets):
        _confirm(f"remove {len(targets)} model(s), freeing {human_bytes(total)}?", ref.display_name)
    freed = sum(remove_installed(m) for m in targets)
    if all(m.source == "path" for m in targets):
        click.echo(
            f"forgot {ref.display_name}: it is no longer listed; the file itself was left alone",
            err=True,
        )
        return
    click.echo(f"removed {ref.display_name}: freed {human_bytes(freed)}", err=True)


def _matches(model, ref) -> bool:
    if ref.kind == "path":
        return (
            model.source == "path"
            and ref.path is not None
            and (str(ref.path.expanduser().resolve()) == model.path)
        )
    if ref.quant and (model.quant or model.format).upper() != ref.quant.upper():
        return False
    if ref.entry is not None and model.source == "pip":
        return model.name == ref.entry.name
    from localchat.store.cache import wanted_repos

    repos = {r.lower() for r in wanted_repos(ref)}
    return model.repo_id is not None and model.repo_id.lower() in repos


def _confirm(question: str, name: str) -> None:
    if not sys.stdin.isatty():
        raise LocalchatError(
            f"not removing {name}: stdin is not a terminal, so I cannot ask",
            hint="pass -y to remove without asking",
        )
    if not click.confirm(question, default=False, err=True):
        raise LocalchatError(f"kept {name}", hint="nothing was removed")
