"""What a plan says about RPC workers: which layers each device holds, the network, why.

The memory model and the search treat a worker's device like a local GPU with its
own budget (``planner.budget``) and bandwidth (``planner.speed``); this module adds
the parts only a plan across machines has: the endpoints to register, the hops per
token and the first-load transfer (``planner.network``), and the words.
"""

from __future__ import annotations

from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware
from localchat.planner.budget import Budgets
from localchat.planner.memory import MemoryEstimate
from localchat.planner.network import CACHED_TENSOR_MIN_BYTES, network_cost
from localchat.planner.plan import Plan
from localchat.planner.reasons import gib
from localchat.planner.speed import remote_bandwidth


def device_layers(n_layers: int, estimate: MemoryEstimate, budgets: Budgets) -> dict[str, str]:
    """Device name -> what it holds, e.g. ``{"RPC0": "layers 0-8", "CPU": "input embedding"}``."""
    placement = estimate.layer_devices
    holds: dict[str, str] = {}
    for index in [*range(len(estimate.devices) - 1), -1]:
        name = "CPU" if index == -1 else budgets.device_name(index)
        layers = [il for il in range(n_layers) if placement[il] == index]
        parts = ["input embedding"] if index == -1 else []
        if layers:
            parts.append(_layer_range(layers))
        if placement[-1] == index:
            parts.append("output")
        holds[name] = ", ".join(parts) or "nothing"
    return holds


def _layer_range(layers: list[int]) -> str:
    if len(layers) == 1:
        return f"layer {layers[0]}"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}"
    return "layers " + ",".join(str(il) for il in layers)


def rpc_endpoints(hardware: Hardware) -> tuple[str, ...]:
    """The real workers to register, in order (what-if devices have no endpoint)."""
    endpoints: list[str] = []
    for remote in hardware.remotes:
        if remote.source == "rpc" and remote.endpoint not in endpoints:
            endpoints.append(remote.endpoint)
    return tuple(endpoints)


def attach_remote(
    plan: Plan, info: GgufInfo, estimate: MemoryEstimate, hardware: Hardware, budgets: Budgets
) -> None:
    """Fill the plan's worker fields and reasons (a no-op without workers)."""
    plan.device_layers = device_layers(info.n_layers, estimate, budgets)
    if not hardware.remotes:
        return
    plan.rpc_servers = rpc_endpoints(hardware)
    network = network_cost(info, estimate, hardware)
    plan.network = network
    lines = []
    for index, remote in enumerate(hardware.remotes):
        where = "what-if worker" if remote.source == "what-if" else f"worker {remote.endpoint}"
        kind = "on this machine, " if remote.loopback else ""
        bandwidth = remote_bandwidth(hardware, remote) / 1e9
        lines.append(
            f"{budgets.device_name(index)} is device {remote.index} of the {where} "
            f"({kind}{gib(remote.free_bytes)} free of {gib(remote.total_bytes)}, "
            f"{bandwidth:.0f} GB/s assumed): holds "
            f"{plan.device_layers.get(budgets.device_name(index), 'nothing')}"
        )
    if budgets.n_gpus > 1:
        lines.append(
            "offloaded layers are split over workers and GPUs by their usable memory; "
            "llama.cpp runs workers' layers first, then local GPUs'"
        )
    if network.hops_per_token:
        lines.append(
            f"{network.hops_per_token} network hops per token cost "
            f"{network.per_token_s * 1e3:.2f} ms (activations out, logits back)"
        )
    if network.remote_weights_bytes:
        link = min(remote.link_bytes_per_s for remote in hardware.remotes) * 8 / 1e9
        lines.append(
            f"first load sends {gib(network.remote_weights_bytes)} of weights to the workers: "
            f"~{network.first_load_s:.1f} s at {link:g} Gbit/s; later loads read tensors "
            f"over {CACHED_TENSOR_MIN_BYTES >> 20} MiB from the workers' cache"
        )
    if any(remote.loopback for remote in hardware.remotes):
        lines.append("workers on this machine share its RAM and cores with this process")
    plan.reasons.extend(lines)
