"""``localchat catalog``: the models localchat knows by name (models.toml)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from localchat import services
from localchat.units import format_bytes as human_bytes

if TYPE_CHECKING:
    from localchat.services import CatalogEntry


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def catalog(as_json: bool) -> None:
    """List the catalog: name, family, formats, quants with sizes, notes."""
    entries = services.catalog_entries()
    if as_json:
        click.echo(json.dumps([_entry_json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    for entry in entries:
        click.echo(_entry_text(entry))


def _entry_json(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "family": entry.family,
        "description": entry.description,
        "formats": entry.formats,
        "chat_format": entry.chat_format,
        "gguf_repo": entry.gguf.repo if entry.gguf else None,
        "revision": entry.gguf.revision if entry.gguf else None,
        "quants": {q.quant: q.size_bytes for q in entry.gguf.quants.values()} if entry.gguf else {},
        "awq_repo": entry.awq.repo if entry.awq else None,
        "awq_size_bytes": entry.awq.size_bytes if entry.awq else None,
        "sampling": entry.sampling,
        "notes": entry.notes,
    }


def _entry_text(entry: CatalogEntry) -> str:
    lines = [
        click.style(entry.name, bold=True)
        + f"  [{entry.family}; {', '.join(entry.formats)}]  {entry.description}"
    ]
    if entry.gguf:
        quants = ", ".join(
            f"{q.quant} {human_bytes(q.size_bytes)}" for q in entry.gguf.quants.values()
        )
        lines.append(f"    gguf  {entry.gguf.repo}: {quants}")
    if entry.awq:
        lines.append(f"    awq   {entry.awq.repo}: {human_bytes(entry.awq.size_bytes)}")
    if entry.pip:
        lines.append(f"    pip   {entry.pip.package}: {human_bytes(entry.pip.size_bytes)}")
    if entry.notes:
        lines.append(f"    note  {entry.notes}")
    return "\n".join(lines)
