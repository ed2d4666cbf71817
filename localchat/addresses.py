"""Addresses the user types: RPC worker endpoints (``host:port[,host:port]``) and link
speeds (``1Gbit``).  Pure parsing, no network: settings, the CLI and the hardware
probe all check them the same way.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from localchat.errors import ConfigError

DEFAULT_PORT = 50052  # llama.cpp's rpc-server default
DEFAULT_LINK_BYTES_PER_S = 125_000_000  # 1 Gbit/s

_LINK_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps|b/s|B/s)\s*$", re.IGNORECASE)
_LINK_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> Endpoint:
    """``"host:port"`` -> ``Endpoint``; ``ConfigError`` naming the bad text otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or ":" in host or not port_text.isdigit():
        raise ConfigError(
            f"not an RPC endpoint: {text.strip()!r}",
            hint="write host:port, e.g. 192.168.1.20:50052 (IPv6 addresses are not supported)",
        )
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"port out of range in RPC endpoint {text.strip()!r}")
    return Endpoint(host, port)


def parse_endpoints(text: str | None) -> tuple[Endpoint, ...]:
    """``"a:1,b:2"`` -> endpoints in order; empty or None -> (); duplicates refused."""
    if not text or not text.strip():
        return ()
    endpoints = tuple(parse_endpoint(part) for part in text.split(",") if part.strip())
    seen: set[str] = set()
    for endpoint in endpoints:
        if str(endpoint) in seen:
            raise ConfigError(f"RPC endpoint {endpoint} is listed twice")
        seen.add(str(endpoint))
    return endpoints


def parse_link(text: str) -> float:
    """Link speed -> bytes per second: ``1Gbit``, ``2.5Gbit``, ``100Mbit``, ``1GB/s``."""
    match = _LINK_RE.match(text)
    if not match:
        raise ConfigError(
            f"not a link speed: {text!r}", hint="write e.g. 1Gbit, 10Gbit, 100Mbit or 1GB/s"
        )
    value = float(match.group(1)) * _LINK_SCALE[match.group(2).lower()]
    per_byte = 1 if match.group(3) == "B/s" else 8  # "bit", "bps", "b/s" are bits
    if value <= 0:
        raise ConfigError(f"link speed must be positive: {text!r}")
    return value / per_byte
