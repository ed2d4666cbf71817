"""The network in a plan that spans RPC workers: hops per token and the first load.

Layers run in order, device after device; the input embedding is computed on this
machine's CPU and the logits come back to it.  Every change of device along that
chain that involves a worker is a network hop: the activations (``n_embd`` f32
values; the logits, ``n_vocab`` values, on the way back) cross the link, plus a
request/response round trip.  Between two workers the data goes through this
machine (ggml's RPC client copies tensors by reading then writing them), so it pays
both links.

Each side of a hop that is a worker also costs ``RPC_HOP_OVERHEAD_S``: the request,
the worker's threads waking, and the graph it receives and rebuilds for every token
(measured with bench/rpc.py: one loopback worker adds 5.6 ms per token over 2 hops on a
2-core machine, where the transfers themselves take well under 1 ms).

The first load sends every weight placed on a worker over its link.  A worker
started with its cache on (``localchat worker`` always is) keeps tensors over
``CACHED_TENSOR_MIN_BYTES`` on disk by hash, so later loads send only the small ones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from localchat.gguf.info import GgufInfo
from localchat.hardware.types import Hardware, RemoteDevice
from localchat.planner.memory import MemoryEstimate

CACHED_TENSOR_MIN_BYTES = 10 << 20  # ggml-rpc.cpp HASH_THRESHOLD
RPC_HOP_OVERHEAD_S = 2.5e-3  # per worker side of a hop, per token (see above)
F32_BYTES = 4


@dataclass(frozen=True)
class NetworkCost:
    hops_per_token: int
    per_token_s: float
    remote_weights_bytes: int
    first_load_s: float  # weights sent over the link(s) at their speed

    def to_json(self) -> dict[str, float | int]:
        return {
            "hops_per_token": self.hops_per_token,
            "per_token_s": round(self.per_token_s, 6),
            "remote_weights_bytes": self.remote_weights_bytes,
            "first_load_s": round(self.first_load_s, 3),
        }


NO_NETWORK = NetworkCost(0, 0.0, 0, 0.0)


def remote_of(hardware: Hardware, device: int) -> RemoteDevice | None:
    """The worker's device behind offload device ``device`` (-1 = CPU), or None if local."""
    return hardware.remotes[device] if 0 <= device < len(hardware.remotes) else None


def _hop_s(remote: RemoteDevice | None, n_bytes: int) -> float:
    if remote is None:
        return 0.0
    return RPC_HOP_OVERHEAD_S + remote.link_latency_s + n_bytes / remote.link_bytes_per_s


def network_cost(info: GgufInfo, estimate: MemoryEstimate, hardware: Hardware) -> NetworkCost:
    """Per-token hop time and first-load transfer for this placement."""
    if not hardware.remotes:
        return NO_NETWORK
    chain = [-1, *estimate.layer_devices, -1]  # CPU (embedding) → layers → output → CPU
    activation_bytes = info.n_embd * F32_BYTES
    hops, seconds = 0, 0.0
    for step, (before, after) in enumerate(itertools.pairwise(chain)):
        if before == after:
            continue
        logits = step == len(chain) - 2  # the last step brings the logits home
        n_bytes = info.n_vocab * F32_BYTES if logits else activation_bytes
        cost = _hop_s(remote_of(hardware, before), n_bytes)
        cost += _hop_s(remote_of(hardware, after), n_bytes)
        if cost:
            hops += 1
            seconds += cost
    remote_bytes = 0
    first_load_s = 0.0
    for index, remote in enumerate(hardware.remotes):
        if index < len(estimate.devices) - 1:
            weights = estimate.devices[index].weights_bytes
            remote_bytes += weights
            first_load_s += weights / remote.link_bytes_per_s
    return NetworkCost(hops, seconds, remote_bytes, first_load_s)
