"""The what-if machine options ``plan`` and ``search`` share: plan for hardware you don't
have (``--vram 24GiB`` repeatable, ``--ram``, ``--apple``, ``--cpu-only``, ``--remote``),
or with real RPC workers (``--rpc``, ``--link``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from localchat import services
from localchat.cli.options import link_option, rpc_option

F = TypeVar("F", bound=Callable[..., object])

_OPTIONS = (
    click.option(
        "--vram",
        multiple=True,
        metavar="SIZE",
        help="What-if GPU memory, e.g. 24GiB; repeat for several GPUs.",
    ),
    click.option("--ram", metavar="SIZE", help="What-if RAM, e.g. 64GiB."),
    click.option("--apple", metavar="SIZE", help="What-if Apple Silicon Mac with this much RAM."),
    click.option("--cpu-only", is_flag=True, help="Plan without any GPU."),
    click.option(
        "--remote",
        multiple=True,
        metavar="SIZE",
        help="What-if RPC worker with a device of this size, e.g. 24GiB; repeatable.",
    ),
    rpc_option,
    link_option,
)


def what_if_options(command: F) -> F:
    """Add ``--vram --ram --apple --cpu-only --remote --rpc --link`` to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def what_if(
    vram: tuple[str, ...],
    ram: str | None,
    apple: str | None,
    cpu_only: bool,
    remote: tuple[str, ...],
    rpc: str | None,
    link: str | None,
) -> services.WhatIf:
    """The options' values as the services take them."""
    return services.WhatIf(vram, ram, apple, cpu_only, remote, rpc, link)
