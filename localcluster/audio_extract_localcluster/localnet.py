"""Ports and readiness probes on this machine, for the local cluster, the tests and the benchmarks."""

from __future__ import annotations

import random
import socket
import ssl
import urllib.request


def free_port(address: str = "127.0.0.1") -> int:
    """A port the kernel has just found free on ``address`` (another process may take it before
    the caller binds it: fine for servers started right away)."""
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(names: tuple[str, ...], bind: str = "127.0.0.1") -> dict[str, int]:
    """Ports free now, below Linux's ephemeral range (32768+), where an outgoing connection could
    take one between this choice and the server's bind: for servers that bind several ports late
    (SeaweedFS's gRPC ports too: its default, port + 10000, would clash between servers side by side)."""
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = random.randrange(10000, 32768)
        with socket.socket() as s:
            try:
                s.bind((bind, port))
            except OSError:
                continue
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether ``url`` answers 200 within 2 s: a readiness probe."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
