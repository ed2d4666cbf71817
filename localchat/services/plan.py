"""Plan a model before (or without) downloading it, on this machine or a what-if one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from localchat.addresses import DEFAULT_LINK_BYTES_PER_S, parse_link
from localchat.hardware import Hardware, detect_hardware
from localchat.hardware.rpc import what_if_remote, with_workers
from localchat.planner import Plan, PlanRequest, parse_size, plan_reference, what_if_hardware
from localchat.planner.profiles import what_if_gpu
from localchat.services.resolve import ModelRef, find_on_disk, resolve_model
from localchat.settings import load_settings

__all__ = ["Plan", "PlanRequest", "WhatIf", "plan_hardware", "plan_model", "settings_threads"]


@dataclass(frozen=True)
class WhatIf:
    """Hardware to plan for instead of (or on top of) this machine's."""

    vram: tuple[str, ...] = ()  # one GPU of each size, e.g. "24GiB"
    ram: str | None = None
    apple: str | None = None  # an Apple Silicon Mac with this much memory
    cpu_only: bool = False
    remote: tuple[str, ...] = ()  # RPC workers with one device of each size
    rpc: str | None = None  # real RPC workers "host:port,..." (probed); None: settings.toml's
    link: str | None = None  # network speed to the workers, e.g. "1Gbit"


def plan_model(
    model: str | ModelRef,
    hardware: Hardware | None = None,
    request: PlanRequest | None = None,
    *,
    offline: bool = False,
) -> Plan:
    """The planner's plan for MODEL (remote headers by HTTP Range, or models.toml's
    figures offline; nothing is downloaded).  ``hardware``: this machine's by default."""
    ref, _ = resolve_model(model)
    if ref.kind == "path":
        find_on_disk(ref)  # a path is a model only when a format recognises it, as for pull
    return plan_reference(ref, hardware or detect_hardware(), request, offline=offline)


def plan_hardware(what_if: WhatIf) -> Hardware:
    """This machine, or the what-if machine the options describe, with its RPC workers."""
    if what_if.vram or what_if.apple:
        base = what_if_hardware(
            None, vram=what_if.vram, ram=what_if.ram, apple=what_if.apple,
            cpu_only=what_if.cpu_only,
        )  # fmt: skip
    elif what_if.ram or what_if.cpu_only:
        base = what_if_hardware(detect_hardware(), ram=what_if.ram, cpu_only=what_if.cpu_only)
    else:
        base = detect_hardware()
    return _with_remotes(base, what_if.remote, what_if.rpc, what_if.link)


def _with_remotes(
    hardware: Hardware, remote: Sequence[str], rpc: str | None, link: str | None
) -> Hardware:
    """Add what-if workers (``--remote 24GiB``) and real ones (``--rpc``, probed)."""
    if rpc is None:
        rpc = load_settings().rpc
    link_bytes_per_s = parse_link(link) if link else DEFAULT_LINK_BYTES_PER_S
    what_ifs = []
    for size in remote:
        size_bytes = parse_size(size)
        bandwidth = what_if_gpu(0, size_bytes).bandwidth_bytes_per_s  # a GPU that size
        device = what_if_remote(size_bytes, link_bytes_per_s)
        what_ifs.append(dataclasses.replace(device, bandwidth_bytes_per_s=bandwidth))
    hardware = with_workers(hardware, rpc, link)
    return dataclasses.replace(hardware, remotes=hardware.remotes + tuple(what_ifs))


def settings_threads() -> int | None:
    """``threads`` from settings.toml, as ``ask`` would use it."""
    return load_settings().threads
