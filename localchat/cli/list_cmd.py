"""``localchat list``: the models on disk, with size, quant, format and when last used."""

from __future__ import annotations

import json
import time

import click

from localchat import services
from localchat.units import format_bytes


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(as_json: bool) -> None:
    """List models on disk: pulled ones, the pip-delivered offline model, and local files run."""
    models = services.installed_models()
    if as_json:
        click.echo(json.dumps([m.to_json() for m in models], indent=2))
        return
    if not models:
        click.echo("no models on disk; try `localchat pull qwen2.5-0.5b`", err=True)
        return
    rows = [("NAME", "QUANT", "FORMAT", "SIZE", "LAST USED", "SOURCE")]
    rows += [
        (
            m.name,
            m.quant or "-",
            m.format,
            format_bytes(m.size_bytes),
            _when(m.last_used),
            m.source,
        )
        for m in models
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    age_s = time.time() - timestamp
    for unit_s, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if age_s >= unit_s:
            return f"{int(age_s // unit_s)} {unit} ago"
    return "just now"
