"""A real, slow DNS resolver for the tests that request the component tier's ``slow_dns``
fixture: the sandbox a test runs in (new network and mount namespaces whose ``/etc/resolv.conf``
names 127.0.0.1) and :class:`SlowDNS`, the server answering on 127.0.0.1:53 inside it. The
fixture and the hook that re-runs such a test in the sandbox are in ``tests/component/conftest.py``.

- ``*.fast.test`` → 127.0.0.1 at once;
- ``*.slow.test`` → 127.0.0.1 after ``SlowDNS.delay`` seconds;
- ``*.never.test`` → no answer at all (glibc gives up after 2 x 5 s);
- anything else → NXDOMAIN. AAAA questions get an empty answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

INSIDE = "AUDIO_EXTRACT_TEST_DNS_SANDBOX"

RESOLV_CONF = "nameserver 127.0.0.1\n"  # glibc's defaults: timeout:5 attempts:2
NSSWITCH = "hosts: files dns\n"  # nothing between getaddrinfo and the server (no nss-resolve)

_BIND = (
    'mount --bind "$1" /etc/resolv.conf && '
    '{ [ ! -e /etc/nsswitch.conf ] || mount --bind "$2" /etc/nsswitch.conf; } && shift 2 && exec "$@"'
)


def unshare() -> list[str]:
    cmd = ["unshare", "--mount", "--net"]
    return cmd if os.geteuid() == 0 else [*cmd, "--user", "--map-root-user"]


def sandbox_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is missing"
    try:
        probe = subprocess.run([*unshare(), "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if probe.returncode == 0 else (probe.stderr.strip() or f"exit {probe.returncode}")


def run_sandboxed(nodeid: str, rootpath: Path) -> subprocess.CompletedProcess[str]:
    """A child pytest running the test ``nodeid`` in the sandbox, with ``INSIDE`` set."""
    with tempfile.TemporaryDirectory(prefix="dns-sandbox-") as tmp:
        work = Path(tmp)
        (work / "resolv.conf").write_text(RESOLV_CONF)
        (work / "nsswitch.conf").write_text(NSSWITCH)
        pytest_args = ["-q", "-rP", "-p", "no:cacheprovider", f"--basetemp={work / 't'}", nodeid]
        cmd = [
            *unshare(),
            "sh",
            "-c",
            _BIND,
            "sh",
            str(work / "resolv.conf"),
            str(work / "nsswitch.conf"),
            sys.executable,
            "-m",
            "pytest",
            *pytest_args,
        ]
        return subprocess.run(
            cmd,
            cwd=rootpath,
            env={**os.environ, INSIDE: "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )


# --- the server ------------------------------------------------------------------------------

A, AAAA = 1, 28


def _question(packet: bytes) -> tuple[str, int, int]:
    """(name, qtype, end of the question section) of a query."""
    labels, at = [], 12
    while (n := packet[at]) != 0:
        labels.append(packet[at + 1 : at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    qtype = struct.unpack("!H", packet[at + 1 : at + 3])[0]
    return ".".join(labels).lower(), qtype, at + 5


def _answer(packet: bytes, end: int, rcode: int, address: bytes | None) -> bytes:
    flags = 0x8180 | rcode  # response, recursion desired and available
    header = packet[:2] + struct.pack("!HHHHH", flags, 1, 1 if address else 0, 0, 0)
    records = b""
    if address:  # a pointer to the question's name, A, IN, TTL 1 s
        records = struct.pack("!HHHIH", 0xC00C, A, 1, 1, len(address)) + address
    return header + packet[12:end] + records


@dataclass
class SlowDNS:
    delay: float = 3.0
    """Seconds before ``*.slow.test`` names are answered."""
    queries: list[tuple[float, str, int]] = field(default_factory=list, repr=False)
    """(time.monotonic(), name, qtype) of every question received."""
    peak: int = 0
    """Most names waiting for an answer at once (``*.never.test`` names wait for ever)."""

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 53))
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}
        self._thread = threading.Thread(target=self._serve, name="slow-dns", daemon=True)
        self._thread.start()

    def names(self, suffix: str = "") -> set[str]:
        with self._lock:
            return {name for _, name, _ in self.queries if name.endswith(suffix)}

    def _serve(self) -> None:
        while True:
            try:
                packet, peer = self._sock.recvfrom(4096)
            except OSError:
                return
            try:
                name, qtype, end = _question(packet)
            except (IndexError, struct.error):
                continue
            with self._lock:
                self.queries.append((time.monotonic(), name, qtype))
                self._waiting[name] = self._waiting.get(name, 0) + 1
                self.peak = max(self.peak, len(self._waiting))
            if name.endswith(".never.test"):
                continue
            known = name.endswith((".fast.test", ".slow.test"))
            reply = _answer(
                packet,
                end,
                0 if known else 3,
                socket.inet_aton("127.0.0.1") if known and qtype == A else None,
            )
            wait = self.delay if name.endswith(".slow.test") else 0.0
            timer = threading.Timer(wait, self._send, (name, reply, peer))
            timer.daemon = True
            timer.start()

    def _send(self, name: str, reply: bytes, peer: tuple[str, int]) -> None:
        with self._lock:
            self._waiting[name] -= 1
            if not self._waiting[name]:
                del self._waiting[name]
        with contextlib.suppress(OSError):
            self._sock.sendto(reply, peer)

    def close(self) -> None:
        self._sock.close()


def loopback_up() -> None:
    """A new network namespace starts with ``lo`` down (``ip link set lo up``, without ``ip``)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))
