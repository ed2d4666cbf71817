"""``--parallel N|auto`` for ``serve`` and ``plan`` (its own module: it reads the settings
rules, which ``--help`` should not load)."""

from __future__ import annotations

import click

from localchat.errors import ConfigError
from localchat.settings import parse_parallel


class SlotCount(click.ParamType[int | str]):
    """A slot count (1-256) or "auto"."""

    name = "N|auto"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_parallel(str(value))
        except ConfigError as exc:
            self.fail(exc.message, param, ctx)
